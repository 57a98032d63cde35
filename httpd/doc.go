// Package httpd is a member's HTTP server: health and readiness checks,
// Prometheus metrics, a JSON API and a web console, for the operator of
// a group (`qmgr start --http ADDR`, off when absent).
//
// # Where it runs
//
// In the member's own process (cli/start.go): it sees the member's state
// directly (its peer record, its structures, its commands) and dies with
// it, so /healthz answering means the member's process is up, and a
// SIGKILLed member's server is gone with it. Every member of a group can
// serve its own; each shows the whole group (the peer table and the
// structures are shared), plus what only it knows (the peer recoveries
// it performed). The server listens before the member starts (Listen,
// then Serve): /healthz answers at once, and /readyz and the API answer
// 503 until the member is active (SetSource).
//
// # Endpoints
//
//	GET  /healthz                     200 "ok": the process is up
//	GET  /readyz                      200 "ready" when the member is active and every
//	                                  defined structure attached and in service
//	                                  (qm.Member.Ready); 503 with the reason otherwise
//	GET  /metrics                     Config.Registry in the Prometheus text format
//	                                  (metrics.Handler: a series that fails to collect is
//	                                  left out and logged, the rest still served; at most
//	                                  4 scrapes at a time, each bounded to 10s)
//	GET  /api/member                  MemberInfo: the member serving, ready, actions on
//	GET  /api/status                  status.Report: the JSON of `qmgr status --json`
//	                                  (package status, one implementation behind both)
//	GET  /api/display/{object}        Display: a DISPLAY command's objects as package
//	                                  mqsc renders them in JSON (`qmgr mqsc --json`);
//	                                  object is one of qlocal, qremote, qstatus,
//	                                  cfstruct, cfstatus, backups (CFSTATUS
//	                                  TYPE(BACKUP)), channel, chstatus, qmgr, group, conn
//	GET  /api/recoveries              Recoveries: the dead members this member
//	                                  recovered since it started, with durations
//	POST /api/channels/{name}/start   START CHANNEL(name), with the token only
//	POST /api/channels/{name}/stop    STOP CHANNEL(name), with the token only
//	GET  /                            the console (static/, embedded)
//
// Any other path is 404, another method 405 (with Allow).
//
// # Actions and the token
//
// Reading is open to whoever reaches the address (bind it to loopback or
// a management network). The two actions that change state need
// Config.Token (`--http-token`, or $QMGR_HTTP_TOKEN), sent as
// "Authorization: Bearer <token>": without a token configured every
// action is 403; a request without the header is 401, with a wrong token
// 403. The comparison is constant-time (auth.go). The token travels in a
// header, never a cookie, so another site's page cannot make a browser
// send it.
//
// # Bad clients
//
// The server has ReadHeaderTimeout, ReadTimeout, WriteTimeout,
// IdleTimeout and MaxHeaderBytes (Config, with documented defaults), so a
// client that sends half a request is cut off and headers beyond the
// limit get 431. Requests run one MQSC command on the member at a time
// (Config.CommandWait, then 503), so a flood of displays cannot crowd out
// the member's own admin commands, which share its command lock. Every answer carries a Content-Security-Policy that
// allows the console's own scripts, styles and API only (no inline
// script, no other origin, no framing), nosniff, and no-store.
//
// # The console
//
// static/index.html, console.js and console.css, embedded with embed: no
// build step, no library, nothing from the internet. console.js polls
// /api/member, /api/status, /api/display/chstatus and /api/recoveries
// every second (qlocal for descriptions and backups every fifth) and
// draws members, structures (fill level), queues (depth, puts and gets
// per second over ten seconds from the queue's group-wide counters,
// sortable, filterable, an SVG sparkline of the last five minutes kept in
// the page), channels (status, owner,
// messages per second from MSGS), backups with the recovery estimate,
// and the peer recoveries. Everything from the API enters the page
// through textContent, never as markup. With a token configured it shows
// a token field and start/stop buttons on the channels.
//
// # Metrics
//
// /metrics serves whatever Config.Registry holds; the member's
// collectors are registered there by the caller (nil: an empty registry).
package httpd
