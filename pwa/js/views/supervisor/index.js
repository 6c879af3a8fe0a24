// The supervisor's (管理员, also the admin's) app: a desk with a big screen first — app.css turns the
// shell's bottom navigation into a left menu on wide screens — and still usable on a phone.
import { dashboardView } from './dashboard.js';
import { incidentsView, incidentView } from './incidents.js';
import { reviewView } from './review.js';
import { rankingsView } from './rankings.js';
import { redemptionsView } from './redemptions.js';
import { membersView, enrolView } from './members.js';
import { exportsView } from './exports.js';

export const routes = {
  '': dashboardView,
  incidents: incidentsView, // unrouted ones to dispatch, complex-case requests
  'incidents/:id': incidentView, // also where notifications and the overdue list lead
  review: reviewView,
  rankings: rankingsView,
  redemptions: redemptionsView,
  members: membersView,
  'members/new': enrolView, // not "enrol": the shell keeps that route for signing in
  exports: exportsView,
};

export const nav = [
  { path: '', icon: '📊', label: 'supervisor.nav.dashboard' },
  { path: 'incidents', icon: '🚨', label: 'supervisor.nav.incidents' },
  { path: 'review', icon: '⚖️', label: 'supervisor.nav.review' },
  { path: 'rankings', icon: '🏆', label: 'supervisor.nav.rankings' },
  { path: 'redemptions', icon: '🎁', label: 'supervisor.nav.redemptions' },
  { path: 'members', icon: '👥', label: 'supervisor.nav.members' },
  { path: 'exports', icon: '⬇️', label: 'supervisor.nav.exports' },
];
