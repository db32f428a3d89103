/* Integration tests of profiles, the apps' graphs and blocks: each case
 * talks to a real tesserad (two workers, random port, temporary data dir)
 * over HTTP, as docs/protocol.md describes the calls. Every wait is bounded
 * by a deadline; nothing sleeps to synchronise. The process and HTTP
 * helpers are those of server_harness.h. */
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
#include "server/worker.h"
#include "server_harness.h"
#include "test.h"

static server srv;

/* ---- identities, devices, sessions ---- */

static user ann = {.phone = "+15550201"}, ben = {.phone = "+15550202"},
            cat = {.phone = "+15550203"}, dan = {.phone = NULL};

static int api(const char *method, const char *path, const user *u, const char *body) {
  return call(srv.port, method, path, u ? u->s.token : NULL, body);
}

/* resp.json["profile"][key] as a string, or "". */
static const char *pstr(const char *key) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "profile");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static int list_len(const char *list) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, list));
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

/* ---- cases ---- */

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  CHECK(make_user(&srv, &ben, "ben"));
  CHECK(make_user(&srv, &cat, "cat"));
  CHECK(make_user(&srv, &dan, "dan"));
}

static void test_profiles(void) {
  /* chat needs a verified number */
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &dan, "{\"display_name\":\"Dan\"}"), 409);
  CHECK(err_is("phone_unverified"));
  CHECK_INT(api("GET", "/v1/apps/chat/profile", &dan, NULL), 404);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &ann,
                "{\"display_name\":\"Ann\",\"about\":\"hi\\nthere\"}"),
            201);
  CHECK(strcmp(pstr("number"), ann.phone) == 0);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &ann, "{\"display_name\":\"Ann A\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/chat/profile", &ann, NULL), 200);
  CHECK(strcmp(pstr("display_name"), "Ann A") == 0);
  CHECK(strcmp(pstr("number"), ann.phone) == 0);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &ben, "{\"display_name\":\"Ben\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/chat/profile", &cat, "{}"), 201);
  /* social handles: lower-cased, unique case-insensitively within social */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann,
                "{\"handle\":\"Ann.S\",\"name\":\"Ann\",\"bio\":\"photos\"}"),
            201);
  CHECK(strcmp(pstr("handle"), "ann.s") == 0);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ben, "{\"handle\":\"ANN.s\"}"), 409);
  CHECK(err_is("conflict"));
  CHECK_INT(api("GET", "/v1/apps/social/profile", &ben, NULL), 404);
  /* ... but not across apps */
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &ben, "{\"username\":\"ann.s\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ben,
                "{\"handle\":\"ben\",\"name\":\"Ben\",\"private\":true}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &cat, "{\"handle\":\"cat\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &ann, "{\"username\":\"ann\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat,
                "{\"username\":\"catshop\",\"name\":\"Cat's bakery\",\"page\":true,"
                "\"category\":\"Bakery\",\"hours\":\"Mo-Fr 7-18\","
                "\"website\":\"https://cat.example/shop\"}"),
            201);
  CHECK(strcmp(pstr("website"), "https://cat.example/shop") == 0);
  /* a handle changes in place; the old one is free again */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann, "{\"handle\":\"ann.tmp\"}"), 200);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ann.s", &ben, NULL), 404);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann,
                "{\"handle\":\"ann.s\",\"name\":\"Ann\",\"bio\":\"photos\"}"),
            200);
}

static void test_profile_bad_input(void) {
  const char *bad[] = {"{\"handle\":\"ab\"}",
                       "{\"handle\":\".dan\"}",
                       "{\"handle\":\"dan.\"}",
                       "{\"handle\":\"d..an\"}",
                       "{\"handle\":\"dan-x\"}",
                       "{\"handle\":\"dan x\"}",
                       "{\"handle\":\"d\\u00e4n\"}",
                       "{\"handle\":\"abcdefghijabcdefghijabcdefghija\"}", /* 31 */
                       "{\"handle\":7}",
                       "{\"name\":\"no handle\"}",
                       "{\"handle\":\"dan\",\"name\":\"a\\u0001b\"}",
                       "{\"handle\":\"dan\",\"name\":\"a\\u0085b\"}",
                       "{\"handle\":\"dan\",\"name\":\"line\\nbreak\"}",
                       "{\"handle\":\"dan\",\"name\":[1]}",
                       "{\"handle\":\"dan\",\"private\":\"yes\"}",
                       "{\"handle\":\"dan\",\"bio\":12}",
                       "[\"dan\"]",
                       "not json",
                       "",
                       NULL};
  for (int i = 0; bad[i]; i++) {
    int st = api("PUT", "/v1/apps/social/profile", &dan, bad[i]);
    if (st != 400) fprintf(stderr, "  body #%d -> %d\n", i, st);
    CHECK_INT(st, 400);
    CHECK(err_is("bad_request"));
  }
  char big[700];
  snprintf(big, sizeof big, "{\"handle\":\"dan\",\"bio\":\"%0501d\"}", 0);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &dan, big), 400);
  const char *badm[] = {
      "{\"username\":\"dan\",\"page\":true,\"website\":\"ftp://x.org\"}",
      "{\"username\":\"dan\",\"page\":true,\"website\":\"https://\"}",
      "{\"username\":\"dan\",\"page\":true,\"website\":\"http://a b\"}",
      "{\"username\":\"dan\",\"page\":1}", NULL};
  for (int i = 0; badm[i]; i++)
    CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &dan, badm[i]), 400);
  /* nothing was stored */
  CHECK_INT(api("GET", "/v1/apps/social/profile", &dan, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/messenger/profile", &dan, NULL), 404);
  CHECK_INT(db_count("SELECT count(*) FROM profiles WHERE handle LIKE 'd%'"), 0);
  /* bad app names */
  CHECK_INT(api("PUT", "/v1/apps/photos/profile", &dan, "{\"handle\":\"dan\"}"), 404);
  CHECK(err_is("not_found"));
  CHECK_INT(api("GET", "/v1/apps/Chat/profile", &dan, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/photos/profiles/dan", &dan, NULL), 404);
  CHECK_INT(api("POST", "/v1/apps/social/profile", &dan, "{\"handle\":\"dan\"}"), 405);
  /* a profile can be deleted and made again */
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &dan, "{\"handle\":\"dan\"}"), 201);
  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &dan, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &dan, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/dan", &ann, NULL), 404);
}

static void test_lookup_and_search(void) {
  CHECK_INT(api("GET", "/v1/apps/social/profiles/BEN", &ann, NULL), 200);
  CHECK(strcmp(pstr("handle"), "ben") == 0);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "profile");
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "private")));
  CHECK(strstr(resp.body, "account") == NULL); /* no account id: apps stay unlinked */
  CHECK_INT(api("GET", "/v1/apps/social/profiles/nobody", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/a", &ann, NULL), 400);
  CHECK(err_is("bad_request"));
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/+15550202", &ann, NULL), 200);
  CHECK(strcmp(pstr("display_name"), "Ben") == 0);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/%2B15550202", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/+15550299", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/ben", &ann, NULL), 400);
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/catshop", &ann, NULL), 200);
  CHECK(strcmp(pstr("category"), "Bakery") == 0);
  /* the same name in another app is another profile */
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/ann.s", &cat, NULL), 200);
  CHECK(strcmp(pstr("username"), "ann.s") == 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/profiles/ben", &cat, NULL), 404);
  /* search: prefixes in social and messenger; private accounts are found */
  CHECK_INT(api("GET", "/v1/apps/social/search?q=An", &ben, NULL), 200);
  CHECK_INT(list_len("results"), 1);
  CHECK_INT(count_in("results", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=b", &cat, NULL), 200);
  CHECK_INT(count_in("results", "handle", "ben"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=ann&limit=1", &cat, NULL), 200);
  CHECK_INT(list_len("results"), 1);
  CHECK_INT(count_in("results", "username", "ann"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=ann&limit=50", &cat, NULL), 200);
  CHECK_INT(list_len("results"), 2);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=zzz", &cat, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  /* chat: exact number only */
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B15550203", &ann, NULL), 200);
  CHECK_INT(count_in("results", "number", cat.phone), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B1555020", &ann, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=ben", &ann, NULL), 400);
  const char *badq[] = {"/v1/apps/social/search",
                        "/v1/apps/social/search?q=",
                        "/v1/apps/social/search?q=a-b",
                        "/v1/apps/social/search?q=an&limit=0",
                        "/v1/apps/social/search?q=an&limit=51",
                        "/v1/apps/social/search?q=an&limit=x",
                        NULL};
  for (int i = 0; badq[i]; i++) {
    CHECK_INT(api("GET", badq[i], &ann, NULL), 400);
    CHECK(err_is("bad_request"));
  }
}

static void test_contacts(void) {
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ann,
                "{\"numbers\":[\"+15550202\",\"+15550203\",\"+15559999\",\"+15550202\","
                "\"+15550201\"]}"),
            200);
  CHECK_INT(list_len("registered"), 2);
  CHECK_INT(count_in("registered", NULL, ben.phone), 1);
  CHECK_INT(count_in("registered", NULL, cat.phone), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(list_len("contacts"), 2);
  const cJSON *e =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp.json, "contacts"), 0);
  CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "mutual")));
  /* ben has ann too: mutual */
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ben, "{\"numbers\":[\"+15550201\"]}"),
            200);
  CHECK_INT(count_in("registered", NULL, ann.phone), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  const cJSON *c, *list = cJSON_GetObjectItemCaseSensitive(resp.json, "contacts");
  int mutual = 0, seen = 0;
  cJSON_ArrayForEach(c, list) {
    const char *num = cJSON_GetObjectItemCaseSensitive(c, "number")->valuestring;
    bool m = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "mutual"));
    seen++;
    if (strcmp(num, ben.phone) == 0) mutual += m;
    if (strcmp(num, cat.phone) == 0) CHECK(!m);
  }
  CHECK_INT(seen, 2);
  CHECK_INT(mutual, 1);
  /* each list is its owner's */
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &cat, NULL), 200);
  CHECK_INT(list_len("contacts"), 0);
  /* bad input: nothing stored, the old address book stays */
  static char many[24000];
  size_t n = (size_t)snprintf(many, sizeof many, "{\"numbers\":[");
  for (int i = 0; i < 1001; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, "%s\"+1666%07d\"", i ? "," : "", i);
  snprintf(many + n, sizeof many - n, "]}");
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ann, many), 400);
  CHECK(err_is("too_many_contacts"));
  const char *bad[] = {"{\"numbers\":[\"x\"]}",
                       "{\"numbers\":[15550202]}",
                       "{\"numbers\":\"+15550202\"}",
                       "{\"nums\":[]}",
                       "[]",
                       NULL};
  for (int i = 0; bad[i]; i++) {
    CHECK_INT(api("POST", "/v1/apps/chat/contacts", &ann, bad[i]), 400);
    CHECK(err_is("bad_request"));
  }
  CHECK_INT(db_count("SELECT count(*) FROM chat_contacts WHERE number LIKE '+1666%'"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(list_len("contacts"), 2);
  /* no chat profile, no address book */
  CHECK_INT(api("POST", "/v1/apps/chat/contacts", &dan, "{\"numbers\":[]}"), 403);
  CHECK(err_is("forbidden"));
}

static void test_follows(void) {
  CHECK_INT(api("POST", "/v1/apps/social/follows/cat", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &cat, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/following", &ann, NULL), 200);
  CHECK_INT(count_in("following", "handle", "cat"), 1);
  /* a private account: a request, declined, then approved */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(count_in("incoming", "handle", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ann, NULL), 200);
  CHECK_INT(count_in("outgoing", "handle", "ben"), 1);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/decline", &ben, NULL),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(list_len("incoming"), 0);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/approve", &ben, NULL),
            404);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200);
  /* only the target approves: ann cannot approve her own request */
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ben/approve", &ann, NULL), 404);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/approve", &ben, NULL),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ann.s"), 1);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  /* ben follows ann (public) */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ben, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  /* unfollow */
  CHECK_INT(api("DELETE", "/v1/apps/social/follows/cat", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  /* refusals */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ann, NULL), 400);
  CHECK_INT(api("POST", "/v1/apps/social/follows/nobody", &ann, NULL), 404);
  CHECK_INT(api("POST", "/v1/apps/social/follows/b", &ann, NULL), 400);
  CHECK_INT(api("POST", "/v1/apps/social/follows/cat", &dan, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/ann.s/maybe", &ben, NULL), 404);
}

static void test_friends_and_pages(void) {
  /* ben's messenger username is "ann.s" */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann.s", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &ben, NULL), 200);
  CHECK_INT(count_in("incoming", "username", "ann"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &ann, NULL), 200);
  CHECK_INT(count_in("outgoing", "username", "ann.s"), 1);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/accept", &ben, NULL),
            200);
  CHECK(strcmp(jstr("state"), "friends") == 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ann, NULL), 200);
  CHECK_INT(count_in("friends", "username", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ben, NULL), 200);
  CHECK_INT(count_in("friends", "username", "ann"), 1);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/accept", &ben, NULL),
            404);
  /* decline */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/catshop", &ann, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/decline", &cat, NULL),
            200);
  CHECK_INT(api("GET", "/v1/apps/messenger/friend-requests", &cat, NULL), 200);
  CHECK_INT(list_len("incoming"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &cat, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  /* crossing requests make friends */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann", &cat, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/catshop", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "friends") == 0);
  /* unfriend */
  CHECK_INT(api("DELETE", "/v1/apps/messenger/friends/catshop", &ann, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/apps/messenger/friends/catshop", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &cat, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  /* pages */
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ann, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 2);
  CHECK_INT(count_in("followers", "username", "ann"), 1);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &ann, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/ann.s/follow", &ann, NULL), 404);
  CHECK_INT(api("DELETE", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 1);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann", &dan, NULL), 403);
}

static void test_blocks(void) {
  /* edges between ann and ben now: follows both ways (social), friends
   * (messenger), contacts both ways (chat). ben blocks ann by her number. */
  CHECK_INT(
      api("POST", "/v1/blocks", &ben, "{\"app\":\"chat\",\"target\":\"+15550201\"}"),
      200);
  CHECK(strcmp(jstr("state"), "blocked") == 0);
  /* hidden both ways in every app */
  const struct {
    const user *who;
    const char *path;
  } hidden[] = {
      {&ann, "/v1/apps/social/profiles/ben"},
      {&ben, "/v1/apps/social/profiles/ann.s"},
      {&ann, "/v1/apps/messenger/profiles/ann.s"},
      {&ben, "/v1/apps/messenger/profiles/ann"},
      {&ann, "/v1/apps/chat/profiles/+15550202"},
      {&ben, "/v1/apps/chat/profiles/+15550201"},
  };
  for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
    CHECK_INT(api("GET", hidden[i].path, hidden[i].who, NULL), 404);
    CHECK(err_is("not_found"));
  }
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ben", &cat, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/search?q=be", &ann, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/search?q=ann", &ben, NULL), 200);
  CHECK_INT(count_in("results", "username", "ann"), 0);
  CHECK_INT(count_in("results", "username", "ann.s"), 1);
  CHECK_INT(api("GET", "/v1/apps/chat/search?q=%2B15550201", &ben, NULL), 200);
  CHECK_INT(list_len("results"), 0);
  CHECK_INT(api("GET", "/v1/apps/chat/contacts", &ann, NULL), 200);
  CHECK_INT(count_in("contacts", "number", ben.phone), 0);
  CHECK_INT(count_in("contacts", "number", cat.phone), 1);
  /* every edge between them is gone */
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ben, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ann, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ben, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  /* new ones are refused, both ways */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &ann, NULL), 403);
  CHECK(err_is("forbidden"));
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ben, NULL), 403);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann.s", &ann, NULL), 403);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann", &ben, NULL), 403);
  CHECK_INT(db_count("SELECT count(*) FROM social_follow_requests"), 0);
  CHECK_INT(db_count("SELECT count(*) FROM messenger_friend_requests"), 0);
  /* a pending request is removed by a block too */
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(api("POST", "/v1/blocks", &cat, "{\"app\":\"social\",\"target\":\"BEN\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/follow-requests", &ben, NULL), 200);
  CHECK_INT(list_len("incoming"), 0);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 403);
  /* the lists */
  CHECK_INT(api("GET", "/v1/blocks", &ben, NULL), 200);
  CHECK_INT(list_len("blocks"), 1);
  CHECK_INT(count_in("blocks", "target", ann.phone), 1);
  CHECK_INT(api("GET", "/v1/blocks", &ann, NULL), 200);
  CHECK_INT(list_len("blocks"), 0);
  /* refusals */
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":\"ben\"}"),
            400);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":\"nobody\"}"),
            404);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"photos\",\"target\":\"cat\"}"),
            400);
  CHECK(err_is("bad_request"));
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":7}"), 400);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\"}"), 400);
  CHECK_INT(api("POST", "/v1/blocks", &ben, "{\"app\":\"social\",\"target\":\"c..t\"}"),
            400);
  CHECK_INT(db_count("SELECT count(*) FROM blocks"), 2);
  /* ann cannot lift ben's block */
  CHECK_INT(api("DELETE", "/v1/blocks/social/ben", &ann, NULL), 404);
  /* unblock by another of her names: the account is unblocked */
  CHECK_INT(api("DELETE", "/v1/blocks/social/ann.s", &ben, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/blocks/chat/+15550201", &ben, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ben", &ann, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/chat/profiles/+15550201", &ben, NULL), 200);
  /* removed edges stay removed; new ones work */
  CHECK_INT(api("GET", "/v1/apps/messenger/friends", &ann, NULL), 200);
  CHECK_INT(list_len("friends"), 0);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &ben, NULL), 200);
  CHECK(strcmp(jstr("state"), "following") == 0);
  CHECK_INT(api("DELETE", "/v1/blocks/social/ben", &cat, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/blocks/photos/ben", &cat, NULL), 404);
}

/* Every new call refuses no token, a garbage token and a revoked one. */
static void test_authorization(void) {
  user gone;
  session keep = dan.s;
  CHECK_INT(do_login(srv.port, "dan", PW, &dan.id, &gone.s), 201);
  CHECK_INT(api("DELETE", "/v1/sessions/current", &gone, NULL), 200);
  const struct {
    const char *method, *path, *body;
  } calls[] = {
      {"PUT", "/v1/apps/social/profile", "{\"handle\":\"zed\"}"},
      {"GET", "/v1/apps/social/profile", NULL},
      {"DELETE", "/v1/apps/social/profile", NULL},
      {"GET", "/v1/apps/social/profiles/ann.s", NULL},
      {"GET", "/v1/apps/social/search?q=a", NULL},
      {"GET", "/v1/apps/photos/profile", NULL},
      {"POST", "/v1/apps/chat/contacts", "{\"numbers\":[]}"},
      {"GET", "/v1/apps/chat/contacts", NULL},
      {"POST", "/v1/apps/social/follows/ann.s", NULL},
      {"DELETE", "/v1/apps/social/follows/ann.s", NULL},
      {"GET", "/v1/apps/social/follow-requests", NULL},
      {"POST", "/v1/apps/social/follow-requests/ann.s/approve", NULL},
      {"POST", "/v1/apps/social/follow-requests/ann.s/decline", NULL},
      {"GET", "/v1/apps/social/followers", NULL},
      {"GET", "/v1/apps/social/following", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ann", NULL},
      {"GET", "/v1/apps/messenger/friend-requests", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ann/accept", NULL},
      {"POST", "/v1/apps/messenger/friend-requests/ann/decline", NULL},
      {"DELETE", "/v1/apps/messenger/friends/ann", NULL},
      {"GET", "/v1/apps/messenger/friends", NULL},
      {"POST", "/v1/apps/messenger/pages/catshop/follow", NULL},
      {"DELETE", "/v1/apps/messenger/pages/catshop/follow", NULL},
      {"GET", "/v1/apps/messenger/pages/catshop/followers", NULL},
      {"POST", "/v1/blocks", "{\"app\":\"social\",\"target\":\"cat\"}"},
      {"GET", "/v1/blocks", NULL},
      {"DELETE", "/v1/blocks/social/cat", NULL},
  };
  const char *tokens[] = {NULL, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "abc",
                          gone.s.token};
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) {
      int st = call(srv.port, calls[i].method, calls[i].path, tokens[k], calls[i].body);
      if (st != 401)
        fprintf(stderr, "  %s %s token#%zu -> %d\n", calls[i].method, calls[i].path, k,
                st);
      CHECK_INT(st, 401);
      CHECK(err_is("unauthorized"));
    }
  CHECK_INT(db_count("SELECT count(*) FROM profiles WHERE handle = 'zed'"), 0);
  CHECK_INT(db_count("SELECT count(*) FROM blocks"), 0);
  dan.s = keep;
  CHECK_INT(api("GET", "/v1/blocks", &dan, NULL), 200);
}

/* Deleting a profile removes its edges in that app only. */
static void test_profile_delete_edges(void) {
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(count_in("followers", "handle", "ben"), 1);
  CHECK_INT(api("DELETE", "/v1/apps/social/profile", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/social/followers", &ann, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  CHECK_INT(db_count("SELECT count(*) FROM social_follows"), 0);
  /* messenger untouched */
  CHECK_INT(api("GET", "/v1/apps/messenger/profile", &ben, NULL), 200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(count_in("followers", "username", "ann"), 1);
  /* a page that stops being a page loses its followers */
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat, "{\"username\":\"catshop\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/messenger/pages/catshop/followers", &cat, NULL), 200);
  CHECK_INT(list_len("followers"), 0);
  /* edges for test_graph_in */
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat,
                "{\"username\":\"catshop\",\"page\":true}"),
            200);
  CHECK_INT(api("POST", "/v1/apps/messenger/pages/catshop/follow", &ben, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/catshop", &ann, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann/accept", &cat, NULL),
            200);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann.s", &cat, NULL), 200);
  CHECK_INT(api("POST", "/v1/blocks", &dan, "{\"app\":\"social\",\"target\":\"cat\"}"),
            200);
}

/* graph_in and blocks_between, the functions other modules use, on the
 * stopped server's database. */
typedef struct {
  uint8_t ann[16], ben[16], cat[16], dan[16];
  int got[12];
} graph_probe;

static int probe_run(store_conn *c, void *arg) {
  graph_probe *p = arg;
  int i = 0;
  p->got[i++] = graph_in(c, APP_CHAT, p->ann, p->ben);   /* ann has ben's number */
  p->got[i++] = graph_in(c, APP_CHAT, p->cat, p->ann);   /* cat has no contacts */
  p->got[i++] = graph_in(c, APP_SOCIAL, p->cat, p->ann); /* cat follows ann */
  p->got[i++] = graph_in(c, APP_SOCIAL, p->ann, p->cat);
  p->got[i++] = graph_in(c, APP_MESSENGER, p->ann, p->cat); /* friends */
  p->got[i++] = graph_in(c, APP_MESSENGER, p->cat, p->ann);
  p->got[i++] = graph_in(c, APP_MESSENGER, p->cat, p->ben); /* ben follows cat's page */
  p->got[i++] = graph_in(c, APP_MESSENGER, p->ben, p->cat);
  p->got[i++] = graph_in(c, APP_CHAT, p->ben, p->cat); /* ben's book: only ann */
  p->got[i++] = blocks_between(c, p->dan, p->cat);
  p->got[i++] = blocks_between(c, p->cat, p->dan);
  p->got[i++] = blocks_between(c, p->ann, p->cat);
  return 0;
}

static bool id_of(const user *u, uint8_t out[16]) {
  size_t got = 0;
  return b64_decode(out, 16, u->s.account_id, strlen(u->s.account_id), B64_MODE_URL_NOPAD,
                    &got) == 0 &&
         got == 16;
}

static void test_graph_in(void) {
  graph_probe p = {0};
  CHECK(id_of(&ann, p.ann) && id_of(&ben, p.ben) && id_of(&cat, p.cat) &&
        id_of(&dan, p.dan));
  store_opts o = {.migrations = server_schema, .n_migrations = server_schema_len};
  store *st = NULL;
  CHECK_OK(store_open(srv.data, &o, &st));
  if (!st) return;
  CHECK_OK(store_exec_sync(st, probe_run, &p));
  store_close(st);
  const int want[12] = {1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0};
  for (int i = 0; i < 12; i++) {
    if (p.got[i] != want[i]) fprintf(stderr, "  probe %d\n", i);
    CHECK_INT(p.got[i], want[i]);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("social_graph: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  if (!server_start(&srv, "graph", true, "2", NULL)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("social_graph: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_profiles);
  RUN(test_profile_bad_input);
  RUN(test_lookup_and_search);
  RUN(test_contacts);
  RUN(test_follows);
  RUN(test_friends_and_pages);
  RUN(test_blocks);
  RUN(test_authorization);
  RUN(test_profile_delete_edges);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  kill(srv.pid, SIGTERM);
  int st = server_wait(&srv, 15000);
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "FAIL server did not exit 0 on SIGTERM\n");
    test_failed_++;
  }
  RUN(test_graph_in);
  server_stop(&srv, false);
  return test_report("social_graph");
}
