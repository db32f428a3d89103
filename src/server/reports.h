/* Reports of posts and comments by their viewers, and the admin API
 * (docs/protocol.md "Reports", "Admin API"): the report queue (remove or
 * dismiss), the comment review queue (held and appealed comments, decided
 * ham or spam), and the test clock.
 *
 * Admins are the accounts whose login is in the server's `admins`
 * setting; they use their ordinary session tokens.
 *
 * Threads: handlers on a worker's loop; run callbacks on the store writer. */
#ifndef TSR_SERVER_REPORTS_H
#define TSR_SERVER_REPORTS_H

/* Registers POST /v1/apps/{social,messenger}/reports and /v1/admin/... */
int reports_routes(void);

#endif
