/* Integration tests of reachability and message requests (server/reach.h):
 * each case talks to a real tesserad (two workers, random port, temporary
 * data dir) over HTTP, as docs/protocol.md describes the calls; the last
 * one calls reach_allowed on the stopped server's database. Every wait is
 * bounded by a deadline; nothing sleeps to synchronise. The process and
 * HTTP helpers are those of server_harness.h. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/base64.h"
#include "server/blocks.h"
#include "server/graphs.h"
#include "server/reach.h"
#include "server/worker.h"
#include "server_harness.h"
#include "test.h"

static server srv;

/* ---- identities, devices, sessions ---- */

static user ann = {.phone = "+15550301"}, ben = {.phone = "+15550302"},
            cat = {.phone = "+15550303"}, dan = {.phone = NULL},
            eve = {.phone = "+15550305"};

static int api(const char *method, const char *path, const user *u, const char *body) {
  return call(srv.port, method, path, u ? u->s.token : NULL, body);
}

/* Rows of a table, read from the database file directly. */
static long db_count(const char *sql) {
  char db[400];
  snprintf(db, sizeof db, "%s/tessera.db", srv.data);
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  long n = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/* resp.json["from"][app] as a string, or "". */
static const char *rule_of(const char *app) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(resp.json, "from");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, app);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static bool is_allowed(void) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp.json, "allowed"));
}

/* POST /v1/reach; returns the status. */
static int reach(const user *u, const char *from, const char *to, const char *key) {
  char body[256];
  snprintf(body, sizeof body, "{\"from_app\":\"%s\",\"to_app\":\"%s\",\"to\":\"%s\"}",
           from, to, key);
  return api("POST", "/v1/reach", u, body);
}

/* A reach that must end in a (new or existing) request; its id in out. */
static bool reach_request(const user *u, const char *from, const char *to,
                          const char *key, char out[32]) {
  if (reach(u, from, to, key) != 200 || is_allowed()) return false;
  snprintf(out, 32, "%s", jstr("request_id"));
  return strlen(out) == 22;
}

static bool reach_ok(const user *u, const char *from, const char *to, const char *key) {
  return reach(u, from, to, key) == 200 && is_allowed() &&
         cJSON_GetObjectItemCaseSensitive(resp.json, "request_id") == NULL;
}

/* The entry of list with id, or NULL. */
static const cJSON *entry(const char *list, const char *id) {
  const cJSON *e, *a = cJSON_GetObjectItemCaseSensitive(resp.json, list);
  cJSON_ArrayForEach(e, a) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "id");
    if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0) return e;
  }
  return NULL;
}

static const char *estr(const cJSON *e, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* Profiles: ann, ben, cat in all three apps; dan social and messenger. */
static bool put_profiles(user *u, const char *chat_name, const char *social,
                         const char *messenger) {
  char body[256];
  if (chat_name) {
    snprintf(body, sizeof body, "{\"display_name\":\"%s\"}", chat_name);
    if (api("PUT", "/v1/apps/chat/profile", u, body) != 201) return false;
  }
  snprintf(body, sizeof body, "{\"handle\":\"%s\",\"name\":\"%s S\"}", social, social);
  if (api("PUT", "/v1/apps/social/profile", u, body) != 201) return false;
  snprintf(body, sizeof body, "{\"username\":\"%s\",\"name\":\"%s M\"}", messenger,
           messenger);
  return api("PUT", "/v1/apps/messenger/profile", u, body) == 201;
}

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  CHECK(make_user(&srv, &ben, "ben"));
  CHECK(make_user(&srv, &cat, "cat"));
  CHECK(make_user(&srv, &dan, "dan"));
  CHECK(put_profiles(&ann, "Ann", "ann", "ann.m"));
  CHECK(put_profiles(&ben, "Ben", "ben", "ben.m"));
  CHECK(put_profiles(&cat, "Cat", "cat", "cat.m"));
  CHECK(put_profiles(&dan, NULL, "dan", "dan.m"));
}

static void test_defaults(void) {
  const char *apps[] = {"chat", "social", "messenger"};
  for (int i = 0; i < 3; i++) {
    char path[64];
    snprintf(path, sizeof path, "/v1/apps/%s/reachability", apps[i]);
    CHECK_INT(api("GET", path, &ben, NULL), 200);
    for (int j = 0; j < 3; j++) CHECK(strcmp(rule_of(apps[j]), "graph") == 0);
  }
  /* no chat profile, no chat rules */
  CHECK_INT(api("GET", "/v1/apps/chat/reachability", &dan, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("GET", "/v1/apps/email/reachability", &ben, NULL), 404);
  CHECK_INT(db_count("SELECT count(*) FROM reach_rules"), 0);
}

/* Defaults are each app's graph of the recipient; the sender's app does
 * not matter, the graph is always the target profile's app's. */
static void test_default_graphs_cross_app(void) {
  char id[32];
  /* chat -> social: ben's social graph is whom he follows */
  CHECK(reach_request(&cat, "chat", "social", "ben", id));
  CHECK_INT(api("POST", "/v1/apps/social/follows/cat", &ben, NULL), 200);
  CHECK(reach_ok(&cat, "chat", "social", "ben"));
  CHECK(reach_ok(&cat, "messenger", "social", "ben"));
  /* ... and not the other way: cat does not follow ben */
  CHECK(reach_request(&ben, "social", "social", "cat", id));
  /* social -> messenger: friends */
  CHECK(reach_request(&cat, "social", "messenger", "ben.m", id));
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ben.m", &cat, NULL), 200);
  CHECK(reach_request(&cat, "social", "messenger", "ben.m", id)); /* only asked */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/cat.m/accept", &ben, NULL),
            200);
  CHECK(reach_ok(&cat, "social", "messenger", "ben.m"));
  CHECK(reach_ok(&ben, "chat", "messenger", "cat.m")); /* friendship is mutual */
  /* messenger -> chat: contacts (ben has cat's number) */
  CHECK(reach_request(&cat, "messenger", "chat", ben.phone, id));
  char body[64];
  snprintf(body, sizeof body, "{\"numbers\":[\"%s\"]}", cat.phone);
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ben, body), 200);
  CHECK(reach_ok(&cat, "messenger", "chat", ben.phone));
  CHECK(reach_ok(&cat, "chat", "chat", ben.phone));
  /* dan has no chat profile: cannot reach from chat, can be reached */
  CHECK_INT(reach(&dan, "chat", "social", "ben"), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(reach(&ann, "social", "social", "nobody.here"), 404);
  CHECK(err_is("not_found"));
  CHECK_INT(reach(&ann, "social", "social", "ann"), 400);
}

static void test_rules(void) {
  long reqs = db_count("SELECT count(*) FROM reach_requests");
  /* partial update: messenger keeps its default */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann,
                "{\"from\":{\"chat\":\"everyone\",\"social\":\"nobody\"}}"),
            200);
  CHECK(strcmp(rule_of("chat"), "everyone") == 0);
  CHECK(strcmp(rule_of("social"), "nobody") == 0);
  CHECK(strcmp(rule_of("messenger"), "graph") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("chat"), "everyone") == 0);
  CHECK(strcmp(rule_of("social"), "nobody") == 0);
  /* other apps' rules are their own */
  CHECK_INT(api("GET", "/v1/apps/messenger/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("chat"), "graph") == 0);
  /* everyone */
  CHECK(reach_ok(&cat, "chat", "social", "ann"));
  /* nobody: refused, no request made, even from someone in her graph */
  CHECK_INT(reach(&dan, "social", "social", "ann"), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follows/dan", &ann, NULL), 200);
  CHECK_INT(reach(&dan, "social", "social", "ann"), 403);
  /* a client that skips its own checks and claims more is still refused */
  CHECK_INT(api("POST", "/v1/reach", &dan,
                "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"ann\","
                "\"allowed\":true,\"rule\":\"everyone\",\"force\":true}"),
            403);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs);
  /* graph from messenger: ann follows dan now */
  CHECK(reach_ok(&dan, "messenger", "social", "ann"));
  CHECK_INT(api("DELETE", "/v1/apps/social/follows/dan", &ann, NULL), 200);
  char id[32];
  CHECK(reach_request(&dan, "messenger", "social", "ann", id));
  reqs++;
  /* back to graph */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann,
                "{\"from\":{\"social\":\"graph\"}}"),
            200);
  CHECK(strcmp(rule_of("chat"), "everyone") == 0);
  CHECK(strcmp(rule_of("social"), "graph") == 0);
  CHECK(reach_request(&dan, "social", "social", "ann", id));
  reqs++;
  /* bad input: 400, nothing stored */
  long rules = db_count("SELECT count(*) FROM reach_rules");
  const char *bad_put[] = {"{\"from\":{\"chat\":\"friends\"}}",
                           "{\"from\":{\"email\":\"everyone\"}}",
                           "{\"from\":{\"chat\":1}}",
                           "{\"from\":{\"chat\":null}}",
                           "{\"from\":\"everyone\"}",
                           "{\"chat\":\"everyone\"}",
                           "{\"from\":{\"messenger\":\"nobody\",\"chat\":\"Everyone\"}}",
                           "[]",
                           "",
                           "{",
                           NULL};
  for (int i = 0; bad_put[i]; i++) {
    CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann, bad_put[i]), 400);
    CHECK(err_is("bad_request"));
  }
  CHECK_INT(db_count("SELECT count(*) FROM reach_rules"), rules);
  CHECK_INT(api("GET", "/v1/apps/social/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("messenger"), "graph") == 0);
  CHECK_INT(api("PUT", "/v1/apps/chat/reachability", &dan, "{\"from\":{}}"), 403);
  const char *bad_reach[] = {
      "{\"from_app\":\"social\",\"to_app\":\"social\"}",
      "{\"from_app\":\"email\",\"to_app\":\"social\",\"to\":\"ann\"}",
      "{\"from_app\":\"social\",\"to_app\":\"fax\",\"to\":\"ann\"}",
      "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"a\"}",
      "{\"from_app\":\"social\",\"to_app\":\"chat\",\"to\":\"ann\"}",
      "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":7}",
      "{\"from_app\":1,\"to_app\":\"social\",\"to\":\"ann\"}",
      "[\"social\"]",
      "",
      NULL};
  for (int i = 0; bad_reach[i]; i++) {
    CHECK_INT(api("POST", "/v1/reach", &cat, bad_reach[i]), 400);
    CHECK(err_is("bad_request"));
  }
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs);
}

static void test_requests(void) {
  char id[32], again[32];
  /* dan -> cat in social: a request, the same one when asked again */
  CHECK(reach_request(&dan, "social", "social", "cat", id));
  CHECK(reach_request(&dan, "social", "social", "cat", again));
  CHECK(strcmp(id, again) == 0);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  const cJSON *e = entry("incoming", id);
  CHECK(e != NULL);
  CHECK(strcmp(estr(e, "from_app"), "social") == 0);
  CHECK(strcmp(estr(e, "to_app"), "social") == 0);
  CHECK(strcmp(estr(e, "from"), "dan") == 0);
  CHECK(strcmp(estr(e, "name"), "dan S") == 0);
  CHECK(entry("outgoing", id) == NULL);
  CHECK_INT(api("GET", "/v1/requests", &dan, NULL), 200);
  e = entry("outgoing", id);
  CHECK(e != NULL);
  CHECK(strcmp(estr(e, "to"), "cat") == 0);
  CHECK(strcmp(estr(e, "state"), "pending") == 0);
  CHECK(entry("incoming", id) == NULL);
  /* only the recipient answers */
  char path[128];
  snprintf(path, sizeof path, "/v1/requests/%s/accept", id);
  CHECK_INT(api("POST", path, &dan, NULL), 404);
  CHECK_INT(api("POST", path, &ann, NULL), 404);
  CHECK_INT(api("POST", path, &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "accepted") == 0);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
  CHECK(reach_ok(&dan, "social", "social", "cat"));
  /* only that direction */
  CHECK(reach_request(&dan, "messenger", "social", "cat", again));
  CHECK(strcmp(id, again) != 0);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  CHECK(entry("incoming", id) == NULL);
  CHECK(entry("incoming", again) != NULL);
  /* decline: gone from the recipient's list, still "pending" to the sender,
   * and asking again within 30 days is the same, silent request */
  snprintf(path, sizeof path, "/v1/requests/%s/decline", again);
  CHECK_INT(api("POST", path, &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "declined") == 0);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  CHECK(entry("incoming", again) == NULL);
  CHECK_INT(api("GET", "/v1/requests", &dan, NULL), 200);
  CHECK(strcmp(estr(entry("outgoing", again), "state"), "pending") == 0);
  CHECK(reach_request(&dan, "messenger", "social", "cat", id));
  CHECK(strcmp(id, again) == 0);
  CHECK_INT(api("GET", "/v1/requests", &cat, NULL), 200);
  CHECK(entry("incoming", again) == NULL);
  snprintf(path, sizeof path, "/v1/requests/%s/accept", again);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
  /* bad ids and actions */
  CHECK_INT(api("POST", "/v1/requests/nope/accept", &cat, NULL), 404);
  CHECK_INT(api("POST", "/v1/requests/AAAAAAAAAAAAAAAAAAAAAA/accept", &cat, NULL), 404);
  snprintf(path, sizeof path, "/v1/requests/%s/maybe", again);
  CHECK_INT(api("POST", path, &cat, NULL), 404);
}

static void test_block_from_request(void) {
  char id[32];
  CHECK(reach_request(&dan, "messenger", "chat", ben.phone, id));
  char path[128];
  snprintf(path, sizeof path, "/v1/requests/%s/block", id);
  CHECK_INT(api("POST", path, &ben, NULL), 200);
  CHECK(strcmp(jstr("state"), "blocked") == 0);
  CHECK_INT(api("GET", "/v1/blocks", &ben, NULL), 200);
  CHECK_INT(count_in("blocks", "target", "dan.m"), 1);
  CHECK_INT(api("GET", "/v1/requests", &ben, NULL), 200);
  CHECK(entry("incoming", id) == NULL);
  CHECK_INT(api("GET", "/v1/requests", &dan, NULL), 200);
  CHECK(entry("outgoing", id) == NULL);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests r JOIN blocks b ON"
                     " b.blocked_id = r.sender_id AND b.blocker_id = r.recipient_id"),
            0);
  /* hidden both ways, in every app; reach is 404 from every app to every
   * app, both ways */
  const char *ben_keys[] = {ben.phone, "ben", "ben.m"};
  const char *dan_keys[] = {NULL, "dan", "dan.m"};
  const char *apps[] = {"chat", "social", "messenger"};
  for (int t = 0; t < 3; t++) {
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", apps[t], ben_keys[t]);
    CHECK_INT(api("GET", path, &dan, NULL), 404);
    for (int f = 1; f < 3; f++) {
      CHECK_INT(reach(&dan, apps[f], apps[t], ben_keys[t]), 404);
      CHECK(err_is("not_found"));
    }
    if (!dan_keys[t]) continue;
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", apps[t], dan_keys[t]);
    CHECK_INT(api("GET", path, &ben, NULL), 404);
    for (int f = 0; f < 3; f++)
      CHECK_INT(reach(&ben, apps[f], apps[t], dan_keys[t]), 404);
  }
  /* everyone does not lift a block */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ben,
                "{\"from\":{\"social\":\"everyone\",\"messenger\":\"everyone\"}}"),
            200);
  CHECK_INT(reach(&dan, "social", "social", "ben"), 404);
  CHECK(reach_ok(&cat, "social", "social", "ben"));
  /* the account's keys are hidden across the block too, both ways */
  char kp[128];
  snprintf(kp, sizeof kp, "/v1/accounts/%s/keys", ben.s.account_id);
  CHECK_INT(api("GET", kp, &dan, NULL), 404);
  CHECK_INT(api("GET", kp, &cat, NULL), 200);
  snprintf(kp, sizeof kp, "/v1/accounts/%s/keys", dan.s.account_id);
  CHECK_INT(api("GET", kp, &ben, NULL), 404);
}

static void test_daily_cap(void) {
  /* eve asks 6 directions (3 source apps x social, messenger) of each of
   * nine fresh accounts: the 51st new request is refused. */
  CHECK(make_user(&srv, &eve, "eve"));
  CHECK(put_profiles(&eve, "Eve", "eve", "eve.m"));
  const char *from[] = {"chat", "social", "messenger"};
  int made = 0;
  char id[32], first[32] = "";
  for (int i = 0; i < 9 && made < REACH_DAILY_CAP; i++) {
    user t = {.phone = NULL};
    char login[32], s[32], m[32];
    snprintf(login, sizeof login, "target%d", i);
    snprintf(s, sizeof s, "target%d", i);
    snprintf(m, sizeof m, "target%d.m", i);
    CHECK(make_user(&srv, &t, login));
    CHECK(put_profiles(&t, NULL, s, m));
    for (int f = 0; f < 3 && made < REACH_DAILY_CAP; f++)
      for (int a = 0; a < 2 && made < REACH_DAILY_CAP; a++) {
        CHECK(reach_request(&eve, from[f], a ? "messenger" : "social", a ? m : s, id));
        if (!first[0]) snprintf(first, sizeof first, "%s", id);
        made++;
      }
  }
  CHECK_INT(made, REACH_DAILY_CAP);
  long reqs = db_count("SELECT count(*) FROM reach_requests");
  CHECK_INT(reach(&eve, "chat", "social", "cat"), 429);
  CHECK(err_is("rate_limited"));
  const char *ra = strcasestr(resp.head, "\r\nRetry-After: ");
  CHECK(ra != NULL);
  long secs = ra ? atol(ra + 15) : 0;
  CHECK(secs >= 1 && secs <= 86400);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs);
  /* asking again for an existing request is not a new one */
  CHECK(reach_request(&eve, "chat", "social", "target0", id));
  CHECK(strcmp(id, first) == 0);
  /* allowed reaches are not requests */
  CHECK_INT(api("PUT", "/v1/apps/messenger/reachability", &cat,
                "{\"from\":{\"social\":\"everyone\"}}"),
            200);
  CHECK(reach_ok(&eve, "social", "messenger", "cat.m"));
  /* the cap is per sender */
  CHECK(reach_request(&ann, "chat", "social", "target0", id));
}

/* Deleting a profile forgets its reachability: rules, requests either
 * way, accepted directions; made again, it starts from the defaults. */
static void test_delete_profile_forgets_reach(void) {
  user fay = {.phone = NULL}, gus = {.phone = NULL};
  CHECK(make_user(&srv, &fay, "fay"));
  CHECK(make_user(&srv, &gus, "gus"));
  CHECK(put_profiles(&fay, NULL, "fay", "fay.m"));
  CHECK(put_profiles(&gus, NULL, "gus", "gus.m"));
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &fay,
                "{\"from\":{\"messenger\":\"nobody\"}}"),
            200);
  char in_id[32], out_id[32], acc_id[32], path[128];
  CHECK(reach_request(&gus, "social", "social", "fay", in_id));
  CHECK(reach_request(&fay, "social", "messenger", "gus.m", out_id));
  CHECK(reach_request(&gus, "messenger", "social", "fay", acc_id) == false); /* nobody */
  CHECK(reach_request(&gus, "social", "messenger", "fay.m", acc_id));
  snprintf(path, sizeof path, "/v1/requests/%s/accept", acc_id);
  CHECK_INT(api("POST", path, &fay, NULL), 200); /* about fay's messenger: stays */
  long rules = db_count("SELECT count(*) FROM reach_rules");
  long reqs = db_count("SELECT count(*) FROM reach_requests");
  long accepted = db_count("SELECT count(*) FROM reach_accepted");

  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &fay, NULL), 200);
  CHECK_INT(db_count("SELECT count(*) FROM reach_rules"), rules - 1);
  CHECK_INT(db_count("SELECT count(*) FROM reach_requests"), reqs - 2);
  CHECK_INT(db_count("SELECT count(*) FROM reach_accepted"), accepted);
  CHECK_INT(api("GET", "/v1/requests", &gus, NULL), 200);
  CHECK(entry("incoming", out_id) == NULL);
  CHECK(entry("outgoing", in_id) == NULL);

  CHECK_INT(api("PUT", "/v1/apps/social/profile", &fay, "{\"handle\":\"fay\"}"), 201);
  CHECK_INT(api("GET", "/v1/apps/social/reachability", &fay, NULL), 200);
  CHECK(strcmp(rule_of("messenger"), "graph") == 0);
  CHECK(reach_request(&gus, "social", "social", "fay", path));
  CHECK(strcmp(path, in_id) != 0); /* a new request, not the forgotten one */
  /* The messenger acceptance survives the social profile, not its own. */
  CHECK(reach_ok(&gus, "social", "messenger", "fay.m"));
  CHECK_INT(api("DELETE", "/v1/apps/messenger/profile", &fay, NULL), 200);
  CHECK_INT(db_count("SELECT count(*) FROM reach_accepted"), accepted - 1);
}

static void test_authorization(void) {
  CHECK_INT(api("GET", "/v1/apps/social/reachability", NULL, NULL), 401);
  CHECK(err_is("unauthorized"));
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", NULL,
                "{\"from\":{\"chat\":\"everyone\"}}"),
            401);
  CHECK_INT(api("POST", "/v1/reach", NULL,
                "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"ann\"}"),
            401);
  CHECK_INT(api("GET", "/v1/requests", NULL, NULL), 401);
  CHECK_INT(api("POST", "/v1/requests/AAAAAAAAAAAAAAAAAAAAAA/accept", NULL, NULL), 401);
  CHECK_INT(call(srv.port, "GET", "/v1/requests", "bm90IGEgdG9rZW4", NULL), 401);
  CHECK_INT(api("GET", "/v1/reach", &ann, NULL), 405);
}

/* reach_allowed, the function the delivery service uses, on the stopped
 * server's database. */
typedef struct {
  uint8_t ann[16], ben[16], cat[16], dan[16];
  int got[8];
} reach_probe;

static int probe_run(store_conn *c, void *arg) {
  reach_probe *p = arg;
  int i = 0;
  p->got[i++] = reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->dan, p->cat); /* accepted */
  p->got[i++] =
      reach_allowed(c, APP_MESSENGER, APP_SOCIAL, p->dan, p->cat);      /* declined */
  p->got[i++] = reach_allowed(c, APP_CHAT, APP_SOCIAL, p->cat, p->ann); /* everyone */
  p->got[i++] =
      reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->dan, p->ann); /* graph, none */
  p->got[i++] = reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->dan, p->ben);  /* blocked */
  p->got[i++] = reach_allowed(c, APP_CHAT, APP_SOCIAL, p->dan, p->cat);    /* no chat */
  p->got[i++] = reach_allowed(c, APP_MESSENGER, APP_CHAT, p->cat, p->ben); /* contact */
  p->got[i++] = reach_allowed(c, APP_SOCIAL, APP_SOCIAL, p->ann, p->ann);  /* self */
  return 0;
}

static bool id_of(const user *u, uint8_t out[16]) {
  size_t got = 0;
  return b64_decode(out, 16, u->s.account_id, strlen(u->s.account_id), B64_MODE_URL_NOPAD,
                    &got) == 0 &&
         got == 16;
}

static void test_reach_allowed(void) {
  reach_probe p = {0};
  CHECK(id_of(&ann, p.ann) && id_of(&ben, p.ben) && id_of(&cat, p.cat) &&
        id_of(&dan, p.dan));
  store_opts o = {.migrations = server_schema, .n_migrations = server_schema_len};
  store *st = NULL;
  CHECK_OK(store_open(srv.data, &o, &st));
  if (!st) return;
  CHECK_OK(store_exec_sync(st, probe_run, &p));
  store_close(st);
  const int want[8] = {1, 0, 1, 0, 0, 0, 1, 0};
  for (int i = 0; i < 8; i++) {
    if (p.got[i] != want[i]) fprintf(stderr, "  probe %d\n", i);
    CHECK_INT(p.got[i], want[i]);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("reach: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, "reach", true, "2", NULL)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("reach: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_defaults);
  RUN(test_default_graphs_cross_app);
  RUN(test_rules);
  RUN(test_requests);
  RUN(test_block_from_request);
  RUN(test_daily_cap);
  RUN(test_delete_profile_forgets_reach);
  RUN(test_authorization);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  kill(srv.pid, SIGTERM);
  int st = server_wait(&srv, 15000);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
    test_failed_++;
  }
  RUN(test_reach_allowed);
  server_stop(&srv, false);
  return test_report("reach");
}
