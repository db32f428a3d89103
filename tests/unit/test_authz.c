/* Authorisation matrix for tesserad (docs/protocol.md): every call that needs
 * a session token is refused with 401 `unauthorized` without one, with a
 * malformed or unknown one, and with the token of a revoked or logged-out
 * device; calls on another account's resources and between blocked accounts
 * are refused as the document says; and no refusal changes data (checked by
 * the legitimate owner afterwards). Talks to a real tesserad (two workers,
 * random port, temporary data dir); the process and HTTP helpers are
 * those of server_harness.h. Every wait is bounded by a deadline. */
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
#include "server_harness.h"
#include "test.h"

static server srv;

/* ---- identities, devices, sessions ---- */

static user ann = {.phone = "+15550401"}, ben = {.phone = "+15550402"},
            cat = {.phone = "+15550403"}, eve = {.phone = "+15550405"};

static int api(const char *method, const char *path, const user *u, const char *body) {
  return call(srv.port, method, path, u ? u->s.token : NULL, body);
}

/* resp.json["from"][app] as a string, or "". */
static const char *rule_of(const char *app) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(resp.json, "from");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, app);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* resp.json["profile"]["handle"], or "". */
static const char *pstr_handle(void) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "profile");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "handle");
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

/* ---- test cases ---- */

/* Extra devices of ann: one revoked by ann, one logged out. */
static session revoked, logged_out;
/* A pending message request ben -> ann (social -> social). */
static char req_id[32];

static bool put_profile(const user *u, const char *app, const char *body) {
  char path[64];
  snprintf(path, sizeof path, "/v1/apps/%s/profile", app);
  int st = api("PUT", path, u, body);
  return st == 201 || st == 200;
}

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  CHECK(make_user(&srv, &ben, "ben"));
  CHECK(make_user(&srv, &cat, "cat"));
  CHECK(make_user(&srv, &eve, "eve"));
  CHECK(put_profile(&ann, "chat", "{\"display_name\":\"Ann\"}"));
  CHECK(put_profile(&ann, "social", "{\"handle\":\"ann.s\",\"name\":\"Ann\"}"));
  CHECK(put_profile(&ann, "messenger",
                    "{\"username\":\"annshop\",\"name\":\"Ann's\",\"page\":true,"
                    "\"category\":\"Bakery\"}"));
  CHECK(put_profile(&ben, "chat", "{\"display_name\":\"Ben\"}"));
  CHECK(put_profile(&ben, "social", "{\"handle\":\"ben\",\"private\":true}"));
  CHECK(put_profile(&ben, "messenger", "{\"username\":\"ben\"}"));
  CHECK(put_profile(&cat, "social", "{\"handle\":\"cat\"}"));
  CHECK(put_profile(&eve, "chat", "{\"display_name\":\"Eve\"}"));
  CHECK(put_profile(&eve, "social", "{\"handle\":\"eve\"}"));
  CHECK(put_profile(&eve, "messenger", "{\"username\":\"eve\"}"));

  /* Edges and state that refused calls must not touch. */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200); /* requested */
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/eve", &ben, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/annshop/follow", &ben, NULL), 200);
  CHECK_INT(api("POST", "/v1/blocks", &ann, "{\"app\":\"social\",\"target\":\"cat\"}"),
            200);
  CHECK(reach_request(&ben, "social", "social", "ann.s", req_id));

  /* A revoked device and a logged-out device of ann. */
  CHECK_INT(do_login(srv.port, "ann", PW, &ann.id, &revoked), 201);
  CHECK_INT(do_login(srv.port, "ann", PW, &ann.id, &logged_out), 201);
  char path[128];
  snprintf(path, sizeof path, "/v1/devices/%s", revoked.device_id);
  CHECK_INT(api("DELETE", path, &ann, NULL), 200);
  CHECK_INT(call(srv.port, "DELETE", "/v1/sessions/current", logged_out.token, NULL),
            200);
}

/* Ann's state as her own device sees it; every refusal must leave it so. */
static void check_ann_unchanged(void) {
  CHECK_INT(api("GET", "/v1/devices", &ann, NULL), 200);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp.json, "devices");
  CHECK_INT(cJSON_GetArraySize(d), 1);
  CHECK_INT(count_in("devices", "device_id", ann.s.device_id), 1);
  CHECK_INT(api("GET", "/v1/apps/social/profile", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/chat/profile", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/profile", &ann, NULL), 200);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "profile");
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "page")));
  CHECK_INT(api("GET", "/v1/blocks", &ann, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "blocks")), 1);
  CHECK_INT(count_in("blocks", "target", "cat"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ann, NULL), 200);
  CHECK_INT(count_in("outgoing", "handle", "ben"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/annshop/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "username", "ben"), 1);
  CHECK_INT(api("GET", "/v1/requests", &ann, NULL), 200);
  CHECK_INT(count_in("incoming", "id", req_id), 1);
  CHECK_INT(api("GET", "/v1/apps/social/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("social"), "graph") == 0);
  CHECK(strcmp(rule_of("chat"), "graph") == 0);
  CHECK_INT(api("GET", "/v1/apps/chat/reachability", &ann, NULL), 200);
  CHECK(strcmp(rule_of("chat"), "graph") == 0);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "contacts")),
            0);
}

/* Every authenticated call, refused for each actor without a valid token. */
static void test_unauthenticated_matrix(void) {
  char dev_path[128], req_accept[128], req_decline[128], req_block[128];
  snprintf(dev_path, sizeof dev_path, "/v1/devices/%s", ann.s.device_id);
  snprintf(req_accept, sizeof req_accept, "/v1/requests/%s/accept", req_id);
  snprintf(req_decline, sizeof req_decline, "/v1/requests/%s/decline", req_id);
  snprintf(req_block, sizeof req_block, "/v1/requests/%s/block", req_id);
  const struct {
    const char *method, *path, *body;
  } calls[] = {
      /* accounts and devices */
      {"DELETE", "/v1/sessions/current", NULL},
      {"GET", "/v1/devices", NULL},
      {"DELETE", dev_path, NULL},
      {"POST", "/v1/devices/link-codes", "{}"},
      {"POST", "/v1/phone/codes", "{\"phone\":\"+15550499\"}"},
      {"POST", "/v1/phone/verify", "{\"phone\":\"+15550499\",\"code\":\"123456\"}"},
      /* profiles, every app */
      {"PUT", "/v1/apps/chat/profile", "{\"display_name\":\"X\"}"},
      {"PUT", "/v1/apps/social/profile", "{\"handle\":\"zed\"}"},
      {"PUT", "/v1/apps/messenger/profile", "{\"username\":\"zed\",\"page\":false}"},
      {"GET", "/v1/apps/chat/profile", NULL},
      {"GET", "/v1/apps/social/profile", NULL},
      {"GET", "/v1/apps/messenger/profile", NULL},
      {"DELETE", "/v1/apps/chat/profile", NULL},
      {"DELETE", "/v1/apps/social/profile", NULL},
      {"DELETE", "/v1/apps/messenger/profile", NULL},
      {"GET", "/v1/apps/chat/profiles/+15550402", NULL},
      {"GET", "/v1/apps/social/profiles/ben", NULL},
      {"GET", "/v1/apps/messenger/profiles/annshop", NULL},
      {"GET", "/v1/apps/chat/search?q=%2B15550402", NULL},
      {"GET", "/v1/apps/social/search?q=a&limit=5", NULL},
      {"GET", "/v1/apps/messenger/search?q=a", NULL},
      /* graphs */
      {"POST", "/v1/apps/chat/contacts", "{\"numbers\":[\"+15550402\"]}"},
      {"GET", "/v1/apps/chat/contacts", NULL},
      {"POST", "/v1/apps/social/follows/cat", NULL},
      {"DELETE", "/v1/apps/social/follows/ben", NULL},
      {"GET", "/v1/apps/social/follow-requests", NULL},
      {"POST", "/v1/apps/social/follow-requests/ann.s/approve", NULL},
      {"POST", "/v1/apps/social/follow-requests/ann.s/decline", NULL},
      {"GET", "/v1/apps/social/followers", NULL},
      {"GET", "/v1/apps/social/following", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/eve", NULL},
      {"GET", "/v1/apps/messenger/friend-requests", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ben/accept", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ben/decline", NULL},
      {"DELETE", "/v1/apps/messenger/friends/ben", NULL},
      {"GET", "/v1/apps/messenger/friends", NULL},
      {"POST", "/v1/apps/messenger/pages/annshop/follow", NULL},
      {"DELETE", "/v1/apps/messenger/pages/annshop/follow", NULL},
      {"GET", "/v1/apps/messenger/pages/annshop/followers", NULL},
      /* blocks */
      {"POST", "/v1/blocks", "{\"app\":\"social\",\"target\":\"eve\"}"},
      {"GET", "/v1/blocks", NULL},
      {"DELETE", "/v1/blocks/social/cat", NULL},
      /* reachability and message requests */
      {"GET", "/v1/apps/chat/reachability", NULL},
      {"GET", "/v1/apps/social/reachability", NULL},
      {"PUT", "/v1/apps/social/reachability", "{\"from\":{\"social\":\"everyone\"}}"},
      {"PUT", "/v1/apps/chat/reachability", "{\"from\":{\"chat\":\"nobody\"}}"},
      {"POST", "/v1/reach",
       "{\"from_app\":\"social\",\"to_app\":\"social\",\"to\":\"ben\"}"},
      {"GET", "/v1/requests", NULL},
      {"POST", req_accept, NULL},
      {"POST", req_decline, NULL},
      {"POST", req_block, NULL},
  };
  /* Authorization header lines: none, malformed, unknown, wrong scheme,
   * a revoked device's and a logged-out device's token. */
  char h_basic[160], h_longer[160], h_shorter[160], h_revoked[160], h_out[160],
      h_twice[300];
  snprintf(h_basic, sizeof h_basic, "Authorization: Basic %s\r\n", ann.s.token);
  snprintf(h_longer, sizeof h_longer, "Authorization: Bearer %sA\r\n", ann.s.token);
  snprintf(h_shorter, sizeof h_shorter, "Authorization: Bearer %.42s\r\n", ann.s.token);
  snprintf(h_revoked, sizeof h_revoked, "Authorization: Bearer %s\r\n", revoked.token);
  snprintf(h_out, sizeof h_out, "Authorization: Bearer %s\r\n", logged_out.token);
  snprintf(h_twice, sizeof h_twice, "Authorization: Bearer %s\r\n%s", revoked.token,
           h_out);
  const char *hdrs[] = {
      "",
      "Authorization: Bearer\r\n",
      "Authorization: Bearer \r\n",
      "Authorization: Bearer abc\r\n",
      "Authorization: Bearer not a token!!\r\n",
      "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
      "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n",
      h_basic,
      h_longer,
      h_shorter,
      h_revoked,
      h_out,
      h_twice,
  };
  const char *names[] = {"none",    "bearer-only", "bearer-empty", "short",  "garbage",
                         "unknown", "padded",      "basic-scheme", "longer", "shorter",
                         "revoked", "logged-out",  "two-headers"};
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    for (size_t k = 0; k < sizeof hdrs / sizeof hdrs[0]; k++) {
      int st = call_hdr(srv.port, calls[i].method, calls[i].path, hdrs[k], calls[i].body);
      /* Two Authorization headers make a malformed request (the field is not
       * a list): 400 bad_request is as good a refusal as 401. */
      bool dup = strcmp(names[k], "two-headers") == 0;
      if (dup && st == 400 && err_is("bad_request")) continue;
      bool ok = st == 401 && err_is("unauthorized") &&
                strcasestr(resp.head, "\r\nWWW-Authenticate: Bearer") != NULL;
      if (!ok)
        fprintf(stderr, "  %s %s as %s -> %d %s\n", calls[i].method, calls[i].path,
                names[k], st, err_code());
      CHECK_INT(st, 401);
      CHECK(err_is("unauthorized"));
      CHECK(strcasestr(resp.head, "\r\nWWW-Authenticate: Bearer") != NULL);
    }
  /* The WebSocket upgrade with a present but invalid token is refused. */
  const char *ws_tokens[] = {"abc", revoked.token, logged_out.token};
  for (size_t k = 0; k < sizeof ws_tokens / sizeof ws_tokens[0]; k++) {
    char h[512];
    snprintf(h, sizeof h,
             "Authorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tessera.v1\r\n",
             ws_tokens[k]);
    int st = call_hdr(srv.port, "GET", "/v1/ws", h, NULL);
    if (st != 401) fprintf(stderr, "  ws upgrade token#%zu -> %d\n", k, st);
    CHECK_INT(st, 401);
  }
  /* Nothing changed: ann's state, the other profiles, the revoked devices. */
  check_ann_unchanged();
  CHECK_INT(api("GET", "/v1/apps/social/profiles/zed", &ben, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/zed", &ben, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(count_in("incoming", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &eve, NULL), 200);
  CHECK_INT(count_in("incoming", "username", "ben"), 1);
  CHECK_INT(api("GET", "/v1/blocks", &eve, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "blocks")), 0);
  CHECK_INT(call(srv.port, "GET", "/v1/devices", revoked.token, NULL), 401);
  CHECK_INT(call(srv.port, "GET", "/v1/devices", logged_out.token, NULL), 401);
}

/* Operations on another account's resources. */
static void test_cross_account(void) {
  char path[160];
  /* Revoking another account's device: 404, and the device lives on. */
  snprintf(path, sizeof path, "/v1/devices/%s", ann.s.device_id);
  CHECK_INT(api("DELETE", path, &eve, NULL), 404);
  CHECK(err_is("not_found"));
  snprintf(path, sizeof path, "/v1/devices/%s", revoked.device_id);
  CHECK_INT(api("DELETE", path, &eve, NULL), 404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("DELETE", "/v1/devices/not-an-id", &eve, NULL), 404);
  CHECK_INT(api("GET", "/v1/devices", &eve, NULL), 200);
  CHECK_INT(count_in("devices", "device_id", ann.s.device_id), 0);

  /* A message request addressed to ann: nobody else answers it, the sender
   * included. */
  const char *verbs[] = {"accept", "decline", "block"};
  for (size_t v = 0; v < 3; v++) {
    snprintf(path, sizeof path, "/v1/requests/%s/%s", req_id, verbs[v]);
    CHECK_INT(api("POST", path, &eve, NULL), 404);
    CHECK(err_is("not_found"));
    CHECK_INT(api("POST", path, &ben, NULL), 404);
    CHECK(err_is("not_found"));
    CHECK_INT(api("POST", path, &cat, NULL), 404);
  }
  CHECK_INT(api("GET", "/v1/requests", &ben, NULL), 200);
  CHECK_INT(count_in("outgoing", "id", req_id), 1);
  CHECK_INT(api("GET", "/v1/requests", &eve, NULL), 200);
  CHECK_INT(count_in("incoming", "id", req_id), 0);
  CHECK_INT(api("GET", "/v1/blocks", &eve, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "blocks")), 0);
  CHECK_INT(api("GET", "/v1/blocks", &ben, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "blocks")), 0);
  CHECK(!reach_ok(&ben, "social", "social", "ann.s")); /* not accepted */

  /* A follow request addressed to ben (from ann): eve cannot approve or
   * decline it. */
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/approve", &eve, NULL),
            404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/decline", &eve, NULL),
            404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(count_in("incoming", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ann.s"), 0);

  /* A friend request addressed to eve (from ben): ann cannot accept or
   * decline it (ann's messenger profile is a page). */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ben/accept", &ann, NULL),
            404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ben/decline", &ann, NULL),
            404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &eve, NULL), 200);
  CHECK_INT(count_in("incoming", "username", "ben"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ben, NULL), 200);
  CHECK_INT(count_in("friends", "username", "annshop"), 0);
  CHECK_INT(count_in("friends", "username", "eve"), 0);

  /* Page followers: the page's owner only (a follower of it included). */
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/annshop/followers", &eve, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/annshop/followers", &ben, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK(count_in("followers", "username", "ben") == 0);

  /* Another account's block cannot be lifted. */
  CHECK_INT(api("DELETE", "/v1/blocks/social/cat", &eve, NULL), 404);
  CHECK(err_is("not_found"));

  /* Another account's profile cannot be removed or changed through a key. */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &eve, "{\"handle\":\"ann.s\"}"), 409);
  CHECK_INT(api("GET", "/v1/apps/social/profile", &eve, NULL), 200);
  CHECK(strcmp(pstr_handle(), "eve") == 0);

  check_ann_unchanged();
}

/* Blocked accounts: hidden and refused in every app, both directions. */
static void test_blocked(void) {
  /* eve follows ann (public) and ann's page before the block. */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &eve, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/annshop/follow", &eve, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ann.s", &eve, NULL), 200);
  CHECK_INT(api("POST", "/v1/blocks", &ann, "{\"app\":\"messenger\",\"target\":\"eve\"}"),
            200);
  CHECK(strcmp(jstr("state"), "blocked") == 0);

  /* Lookups: 404 in every app, both ways. */
  const struct {
    const char *app, *ann_key, *eve_key;
  } keys[] = {{"chat", "+15550401", "+15550405"},
              {"social", "ann.s", "eve"},
              {"messenger", "annshop", "eve"}};
  char path[160];
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", keys[i].app, keys[i].ann_key);
    CHECK_INT(api("GET", path, &eve, NULL), 404);
    CHECK(err_is("not_found"));
    CHECK_INT(api("GET", path, &ben, NULL), 200); /* others still see ann */
    snprintf(path, sizeof path, "/v1/apps/%s/profiles/%s", keys[i].app, keys[i].eve_key);
    CHECK_INT(api("GET", path, &ann, NULL), 404);
    CHECK(err_is("not_found"));
  }
  /* Searches hide them. */
  CHECK_INT(api("GET", "/v1/apps/social/search?q=ann", &eve, NULL), 200);
  CHECK_INT(count_in("results", "handle", "ann.s"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=ann", &ben, NULL), 200);
  CHECK_INT(count_in("results", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=annshop", &eve, NULL), 200);
  CHECK_INT(count_in("results", "username", "annshop"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B15550401", &eve, NULL), 200);
  CHECK_INT(count_in("results", "number", "+15550401"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=eve", &ann, NULL), 200);
  CHECK_INT(count_in("results", "handle", "eve"), 0);
  /* Contacts: registered leaves ann out. */
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &eve, "{\"numbers\":[\"+15550401\"]}"),
            200);
  CHECK_INT(count_in("registered", "", "+15550401"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &eve, NULL), 200);
  CHECK_INT(count_in("contacts", "number", "+15550401"), 0);

  /* Existing edges went with the block. */
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "eve"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/annshop/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "username", "eve"), 0);
  CHECK_INT(count_in("followers", "username", "ben"), 1);

  /* New edges: 403 forbidden, both directions. */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &eve, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/annshop", &eve, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/annshop/follow", &eve, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follows/eve", &ann, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/eve", &ann, NULL), 403);
  CHECK(err_is("forbidden"));
  /* Reach: 404 whatever the rule, every app pair, no request made. */
  CHECK_INT(api("PUT", "/v1/apps/social/reachability", &ann,
                "{\"from\":{\"chat\":\"everyone\",\"social\":\"everyone\","
                "\"messenger\":\"everyone\"}}"),
            200);
  const char *apps[] = {"chat", "social", "messenger"};
  for (size_t f = 0; f < 3; f++)
    for (size_t t = 0; t < 3; t++) {
      CHECK_INT(reach(&eve, apps[f], apps[t], keys[t].ann_key), 404);
      CHECK(err_is("not_found"));
      CHECK_INT(reach(&ann, apps[f], apps[t], keys[t].eve_key), 404);
      CHECK(err_is("not_found"));
    }
  CHECK(reach_ok(&ben, "social", "social", "ann.s")); /* others are allowed */
  CHECK_INT(api("GET", "/v1/requests", &ann, NULL), 200);
  CHECK_INT(count_in("incoming", "from", "eve"), 0);
  CHECK_INT(api("GET", "/v1/requests", &eve, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "outgoing")),
            0);

  /* The refusals stored nothing. */
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "eve"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/annshop/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "username", "eve"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &ann, NULL), 200);
  CHECK_INT(count_in("incoming", "username", "eve"), 0);
  CHECK_INT(count_in("outgoing", "username", "eve"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/following", &ann, NULL), 200);
  CHECK_INT(count_in("following", "handle", "eve"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ann, NULL), 200);
  CHECK_INT(count_in("outgoing", "handle", "eve"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/following", &eve, NULL), 200);
  CHECK_INT(count_in("following", "handle", "ann.s"), 0);
  /* The blocked account cannot lift the block. */
  CHECK_INT(api("DELETE", "/v1/blocks/messenger/annshop", &eve, NULL), 404);
  CHECK_INT(api("GET", "/v1/blocks", &ann, NULL), 200);
  CHECK_INT(count_in("blocks", "target", "eve"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ann.s", &eve, NULL), 404);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("authz: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, "authz", true, "2", NULL)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("authz: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_unauthenticated_matrix);
  RUN(test_cross_account);
  RUN(test_blocked);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv, false);
  return test_report("authz");
}
