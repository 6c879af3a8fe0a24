// The courier (骑手) app: its routes and its bottom navigation. The shell (app.js) loads this module
// for members whose role is "courier"; grid/ and supervisor/ follow the same shape.
import { homeView } from './home.js';
import { finishView, editView } from './finish.js';
import { reportsView } from './reports.js';
import { incidentView } from './incident.js';
import { nearbyView } from './nearby.js';
import { pointsView } from './points.js';

// Hash path (after "#/") → view; ":name" segments arrive as ctx.params.name.
export const routes = {
  '': homeView,
  'mark/:id': finishView, // a draft: finish it now or later
  'edit/:clientId': editView, // a report the server refused, back into the drafts for editing
  reports: reportsView,
  'incidents/:id': incidentView, // also where the rider's notifications lead
  nearby: nearbyView,
  points: pointsView,
};

// Bottom navigation: `path` is the first segment it highlights for; `label` a strings key.
export const nav = [
  { path: '', icon: '🏠', label: 'nav.home' },
  { path: 'reports', icon: '📋', label: 'nav.reports' },
  { path: 'nearby', icon: '📍', label: 'nav.nearby' },
  { path: 'points', icon: '⭐', label: 'nav.points' },
];
