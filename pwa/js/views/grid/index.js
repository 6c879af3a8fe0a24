// The grid member (网格员) app: the inbox of my grids, one incident with what I may do, and notifications.
// The shell (app.js) imports this module only for members whose role is "grid_member".
import { inboxView } from './inbox.js';
import { incidentView } from './incident.js';
import { alertsView } from './alerts.js';

// Hash path (after "#/") → view. 'incidents/:id' is also where a tapped notification leads
// (the payload's url, routed by js/sw/notifications.js).
export const routes = {
  '': inboxView,
  'incidents/:id': incidentView,
  alerts: alertsView,
};

export const nav = [
  { path: '', icon: '📥', label: 'grid.nav.inbox' },
  { path: 'alerts', icon: '🔔', label: 'grid.nav.alerts' },
];
