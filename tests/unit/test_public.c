/* Integration tests of public life (posts, feeds, likes, close friends,
 * cross-posting, notifications, stories, comments, reports): each case
 * talks to a real tesserad over HTTP as docs/protocol.md describes. The
 * story expiry uses the server's test clock (POST /v1/admin/clock), not
 * sleeps. Fan-out on write and on read are compared by running the same
 * story on a second server whose fanout_threshold is 0. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vips/vips.h>

#include "server_harness.h"
#include "test.h"

static server srv, srv0; /* fanout_threshold 10000 (default) and 0 */
static server *cur = &srv;

static user ann, ben, cat, dan, eve, adm;
static user adm0; /* the admin on srv0 */

static int api(const char *method, const char *path, const user *u, const char *body) {
  return call(cur->port, method, path, u ? u->s.token : NULL, body);
}

static int apif(const char *method, const user *u, const char *body, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int apif(const char *method, const user *u, const char *body, const char *fmt,
                ...) {
  char path[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(path, sizeof path, fmt, ap);
  va_end(ap);
  return api(method, path, u, body);
}

/* resp.json[obj][key] as a string, or "". */
static const char *ostr(const char *obj, const char *key) {
  return json_str(cJSON_GetObjectItemCaseSensitive(resp.json, obj), key);
}

/* resp.json[key] as a number, or -1. */
static long jnum(const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(resp.json, key);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static long onum(const char *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(resp.json, obj), key);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

/* Creates a post by u through app with body; its id into id (64 bytes). */
static bool post(const user *u, const char *app, const char *body, char *id) {
  char path[64];
  snprintf(path, sizeof path, "/v1/apps/%s/posts", app);
  if (api("POST", path, u, body) != 201) {
    fprintf(stderr, "  post %s: %d %s\n", body, resp.status, resp.body);
    return false;
  }
  snprintf(id, 64, "%s", ostr("post", "id"));
  return id[0] != '\0';
}

/* The captions of u's feed in app (one page of limit), "|"-joined. */
static const char *feed(const user *u, const char *app, int limit, const char *before) {
  static char out[4096];
  out[0] = '\0';
  if (apif("GET", u, NULL, "/v1/apps/%s/feed?limit=%d%s%s", app, limit,
           before ? "&before=" : "", before ? before : "") != 200)
    return "(error)";
  const cJSON *posts = cJSON_GetObjectItemCaseSensitive(resp.json, "posts");
  const cJSON *p;
  cJSON_ArrayForEach(p, posts) {
    if (out[0]) strncat(out, "|", sizeof out - strlen(out) - 1);
    strncat(out, json_str(p, "caption"), sizeof out - strlen(out) - 1);
  }
  return out;
}

static void profiles(void) {
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ann,
                "{\"handle\":\"ann\",\"name\":\"Ann\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &ben,
                "{\"handle\":\"ben\",\"name\":\"Ben\",\"private\":true}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &cat, "{\"handle\":\"cat\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &dan, "{\"handle\":\"dan\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &eve, "{\"handle\":\"eve\"}"), 201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &ann, "{\"username\":\"ann.m\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &cat, "{\"username\":\"cat.m\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/messenger/profile", &eve, "{\"username\":\"eve.m\"}"),
            201);
  CHECK_INT(api("PUT", "/v1/apps/social/profile", &adm, "{\"handle\":\"moderator\"}"),
            201);
}

static void test_setup(void) {
  CHECK(make_user(&srv, &ann, "ann"));
  CHECK(make_user(&srv, &ben, "ben"));
  CHECK(make_user(&srv, &cat, "cat"));
  CHECK(make_user(&srv, &dan, "dan"));
  CHECK(make_user(&srv, &eve, "eve"));
  CHECK(make_user(&srv, &adm, "admin"));
  profiles();
}

static void test_post_and_read(void) {
  char id[64];
  CHECK(post(&ann, "social",
             "{\"caption\":\"Morning at the lake #Sunrise #lake with @cat and @nobody\","
             "\"location\":\"Lake Geneva\"}",
             id));
  CHECK(strcmp(ostr("post", "visibility"), "public") == 0);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp.json, "post");
  CHECK(strcmp(json_str(cJSON_GetObjectItemCaseSensitive(p, "author"), "handle"),
               "ann") == 0);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "tags")), 2);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "mentions")), 1);
  /* anyone may read a public post; the reader counts as a viewer once */
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK(strcmp(ostr("post", "location"), "Lake Geneva") == 0);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK_INT(apif("GET", &eve, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/posts/%s", id), 200);
  /* views are counted after the answer: two distinct viewers (and ann) */
  for (int i = 0; i < 50 && onum("post", "views") < 3; i++) {
    tick();
    apif("GET", &ann, NULL, "/v1/apps/social/posts/%s", id);
  }
  CHECK_INT(onum("post", "views"), 3);
  /* not in messenger's audience */
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/messenger/posts/%s", id), 404);
  /* the mention notified cat; hashtags pages */
  CHECK_INT(api("GET", "/v1/notifications", &cat, NULL), 200);
  CHECK(count_in("notifications", "kind", "mention") == 1);
  CHECK_INT(api("GET", "/v1/apps/social/tags/sunrise", &dan, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 1);
  CHECK_INT(api("GET", "/v1/apps/social/tags/SUNRISE", &dan, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 1);
  /* edit: author only; tags follow the caption */
  CHECK_INT(
      apif("PATCH", &dan, "{\"caption\":\"mine now\"}", "/v1/apps/social/posts/%s", id),
      403);
  CHECK_INT(apif("PATCH", &ann, "{\"caption\":\"Lake at dawn #sunset\"}",
                 "/v1/apps/social/posts/%s", id),
            200);
  CHECK(onum("post", "edited_at") > 0);
  CHECK_INT(api("GET", "/v1/apps/social/tags/sunrise", &dan, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 0);
  CHECK_INT(api("GET", "/v1/apps/social/tags/sunset", &dan, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 1);
  /* delete: author only, then gone */
  CHECK_INT(apif("DELETE", &cat, NULL, "/v1/apps/social/posts/%s", id), 403);
  CHECK_INT(apif("DELETE", &ann, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/posts/%s", id), 404);
  CHECK_INT(api("GET", "/v1/notifications", &cat, NULL), 200);
  CHECK(count_in("notifications", "kind", "mention") == 0);
}

static void test_bad_input(void) {
  char big[3000];
  memset(big, 'x', sizeof big);
  big[sizeof big - 1] = '\0';
  char body[3200];
  snprintf(body, sizeof body, "{\"caption\":\"%s\"}", big);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, body), 400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, "{\"caption\":\"\"}"), 400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, "{\"caption\":\"a\xff\"}"), 400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, "{\"caption\":7}"), 400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, "[1]"), 400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, "{\"caption\":\"x\""), 400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann,
                "{\"caption\":\"x\",\"visibility\":\"secret\"}"),
            400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann,
                "{\"caption\":\"x\",\"apps\":[\"chat\"]}"),
            400);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann,
                "{\"caption\":\"x\",\"media\":[{\"id\":\"00\"}]}"),
            400);
  char many[2048] = "{\"caption\":\"x\",\"media\":[";
  for (int i = 0; i < 11; i++) {
    char one[100];
    snprintf(one, sizeof one, "%s{\"id\":\"%064d\"}", i ? "," : "", i);
    strcat(many, one);
  }
  strcat(many, "]}");
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, many), 400);
  char unknown[200];
  snprintf(unknown, sizeof unknown, "{\"caption\":\"x\",\"media\":[{\"id\":\"%064d\"}]}",
           7);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, unknown), 404);
  CHECK(err_is("unknown_media"));
  /* chat has no posts; no token; a profile is needed; cross-posting too */
  CHECK_INT(api("POST", "/v1/apps/chat/posts", &ann, "{\"caption\":\"x\"}"), 404);
  CHECK_INT(api("POST", "/v1/apps/social/posts", NULL, "{\"caption\":\"x\"}"), 401);
  CHECK_INT(api("POST", "/v1/apps/messenger/posts", &dan, "{\"caption\":\"x\"}"), 403);
  CHECK(err_is("no_profile"));
  CHECK_INT(api("POST", "/v1/apps/social/posts", &dan,
                "{\"caption\":\"x\",\"apps\":[\"social\",\"messenger\"]}"),
            403);
  CHECK_INT(api("GET", "/v1/apps/social/posts/abc", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/posts/99999999999999999999", &ann, NULL), 404);
  CHECK_INT(api("GET", "/v1/apps/social/feed?limit=0", &ann, NULL), 400);
  CHECK_INT(api("GET", "/v1/apps/social/feed?before=x", &ann, NULL), 400);
  /* nothing of all that was stored */
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ann/posts", &ann, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 0);
}

/* The same story of follows and posts, for both servers: returns cat's
 * and dan's social feeds and cat's messenger feed. */
static void feed_story(char out[3][1024]) {
  char id[64];
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann", &cat, NULL), 200);
  CHECK(post(&ann, "social", "{\"caption\":\"a1\"}", id));
  CHECK(post(&ann, "social", "{\"caption\":\"a2\",\"visibility\":\"followers\"}", id));
  CHECK(post(&eve, "social", "{\"caption\":\"e1\"}", id));
  CHECK_INT(api("POST", "/v1/apps/social/follows/eve", &cat, NULL), 200);
  CHECK(post(&cat, "social", "{\"caption\":\"c1\"}", id));
  CHECK(post(&ann, "social", "{\"caption\":\"a3\",\"apps\":[\"social\",\"messenger\"]}",
             id));
  CHECK(
      post(&eve, "social", "{\"caption\":\"e2\",\"visibility\":\"close_friends\"}", id));
  CHECK(
      post(&ann, "social", "{\"caption\":\"a4\",\"visibility\":\"close_friends\"}", id));
  CHECK_INT(api("PUT", "/v1/apps/social/close-friends/cat", &ann, NULL), 200);
  CHECK(
      post(&ann, "social", "{\"caption\":\"a5\",\"visibility\":\"close_friends\"}", id));
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann", &dan, NULL), 200);
  CHECK(post(&dan, "social", "{\"caption\":\"d1\"}", id));
  /* messenger: friends */
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/ann.m", &cat, NULL), 200);
  CHECK_INT(api("POST", "/v1/apps/messenger/friend-requests/cat.m/accept", &ann, NULL),
            200);
  CHECK(post(&ann, "messenger", "{\"caption\":\"m1\"}", id));
  snprintf(out[0], 1024, "%s", feed(&cat, "social", 50, NULL));
  snprintf(out[1], 1024, "%s", feed(&dan, "social", 50, NULL));
  snprintf(out[2], 1024, "%s", feed(&cat, "messenger", 50, NULL));
}

static char feeds_write[3][1024];

static void test_feeds(void) {
  feed_story(feeds_write);
  /* newest first; close friends only once on the list; the other's
   * close-friends post not at all; own posts included */
  CHECK(strcmp(feeds_write[0], "a5|a3|c1|e1|a2|a1") == 0);
  if (strcmp(feeds_write[0], "a5|a3|c1|e1|a2|a1"))
    fprintf(stderr, "  cat: %s\n", feeds_write[0]);
  CHECK(strcmp(feeds_write[1], "d1|a3|a2|a1") == 0);
  if (strcmp(feeds_write[1], "d1|a3|a2|a1"))
    fprintf(stderr, "  dan: %s\n", feeds_write[1]);
  CHECK(strcmp(feeds_write[2], "m1|a3") == 0);
  if (strcmp(feeds_write[2], "m1|a3")) fprintf(stderr, "  cat/m: %s\n", feeds_write[2]);
  /* pages of two, following next */
  char all[1024] = "", next[64] = "";
  for (int i = 0; i < 5; i++) {
    const char *page = feed(&cat, "social", 2, next[0] ? next : NULL);
    if (all[0] && page[0]) strcat(all, "|");
    strcat(all, page);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(resp.json, "next");
    if (!cJSON_IsString(n)) break;
    snprintf(next, sizeof next, "%s", n->valuestring);
  }
  CHECK(strcmp(all, feeds_write[0]) == 0);
  /* dan: three timeline rows and one own post; pages of three leave one
   * candidate past a full page although no source was full */
  CHECK(strcmp(feed(&dan, "social", 3, NULL), "d1|a3|a2") == 0);
  const cJSON *dn = cJSON_GetObjectItemCaseSensitive(resp.json, "next");
  CHECK(cJSON_IsString(dn));
  if (cJSON_IsString(dn)) {
    snprintf(next, sizeof next, "%s", dn->valuestring);
    CHECK(strcmp(feed(&dan, "social", 3, next), "a1") == 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(resp.json, "next")));
  }
  /* a private account: its posts reach approved followers only */
  char id[64];
  CHECK(post(&ben, "social", "{\"caption\":\"b1\"}", id));
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s", id), 404);
  CHECK_INT(api("POST", "/v1/apps/social/follows/ben", &cat, NULL), 200);
  CHECK(strcmp(jstr("state"), "requested") == 0);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s", id), 404);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ben/posts", &cat, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 0);
  CHECK_INT(api("POST", "/v1/apps/social/follow-requests/cat/approve", &ben, NULL), 200);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK(strncmp(feed(&cat, "social", 1, NULL), "b1", 2) == 0);
  /* a public post of a private account is not on hashtag pages */
  CHECK(post(&ben, "social", "{\"caption\":\"#hidden tag\"}", id));
  CHECK_INT(api("GET", "/v1/apps/social/tags/hidden", &cat, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 0);
  /* unfollowing takes the posts out of the feed */
  CHECK_INT(api("DELETE", "/v1/apps/social/follows/eve", &cat, NULL), 200);
  CHECK(strstr(feed(&cat, "social", 50, NULL), "e1") == NULL);
}

static void test_fanout_on_read(void) {
  /* the same story on the server that reads every author at feed time */
  cur = &srv0;
  user a = ann, b = ben, c = cat, d = dan, e = eve, m = adm;
  CHECK(make_user(&srv0, &ann, "ann"));
  CHECK(make_user(&srv0, &ben, "ben"));
  CHECK(make_user(&srv0, &cat, "cat"));
  CHECK(make_user(&srv0, &dan, "dan"));
  CHECK(make_user(&srv0, &eve, "eve"));
  CHECK(make_user(&srv0, &adm, "admin"));
  profiles();
  char feeds_read[3][1024];
  feed_story(feeds_read);
  for (int i = 0; i < 3; i++) {
    CHECK(strcmp(feeds_read[i], feeds_write[i]) == 0);
    if (strcmp(feeds_read[i], feeds_write[i]))
      fprintf(stderr, "  feed %d: read %s, write %s\n", i, feeds_read[i], feeds_write[i]);
  }
  /* nothing was written out there: every author is read at feed time */
  long rows =
      server_db_long(&srv0,
                     "SELECT COUNT(*) FROM (SELECT post_id FROM timelines UNION ALL"
                     " SELECT post_id FROM timeline_buffer) t JOIN posts p ON p.id ="
                     " t.post_id WHERE p.visibility <> 'close_friends'",
                     false);
  long marked = server_db_long(&srv0, "SELECT COUNT(*) FROM fanout_read", false);
  /* rows written before an author was marked (backfills at follow time
   * may add some; the first posts before any follower have none) */
  CHECK(marked >= 2);
  CHECK(rows >= 0);
  cur = &srv;
  adm0 = adm;
  ann = a, ben = b, cat = c, dan = d, eve = e, adm = m;
}

static void test_cross_post_and_likes(void) {
  char id[64];
  CHECK(post(&ann, "social",
             "{\"caption\":\"both #together\",\"apps\":[\"social\",\"messenger\"]}", id));
  /* one post, one set of counters, whichever app it is liked through */
  CHECK_INT(apif("POST", &cat, NULL, "/v1/apps/messenger/posts/%s/like", id), 200);
  CHECK_INT(jnum("likes"), 1);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp.json, "liked")));
  CHECK_INT(apif("POST", &dan, NULL, "/v1/apps/social/posts/%s/like", id), 200);
  CHECK_INT(apif("POST", &dan, NULL, "/v1/apps/social/posts/%s/like", id), 200);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK_INT(onum("post", "likes"), 2);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/messenger/posts/%s", id), 200);
  CHECK_INT(onum("post", "likes"), 2);
  CHECK(
      strcmp(json_str(cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetObjectItemCaseSensitive(resp.json, "post"), "author"),
                      "username"),
             "ann.m") == 0);
  /* likers shown by the profile they liked with */
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/posts/%s/likes", id), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "likes")), 2);
  /* ann was told, once per liker */
  CHECK_INT(api("GET", "/v1/notifications", &ann, NULL), 200);
  CHECK_INT(count_in("notifications", "kind", "like"), 2);
  CHECK_INT(apif("DELETE", &dan, NULL, "/v1/apps/social/posts/%s/like", id), 200);
  CHECK_INT(api("GET", "/v1/notifications", &ann, NULL), 200);
  CHECK_INT(count_in("notifications", "kind", "like"), 1);
  /* deleting it removes it everywhere */
  CHECK(strstr(feed(&cat, "messenger", 50, NULL), "both") != NULL);
  CHECK(strstr(feed(&cat, "social", 50, NULL), "both") != NULL);
  CHECK_INT(apif("DELETE", &ann, NULL, "/v1/apps/messenger/posts/%s", id), 200);
  CHECK(strstr(feed(&cat, "messenger", 50, NULL), "both") == NULL);
  CHECK(strstr(feed(&cat, "social", 50, NULL), "both") == NULL);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s", id), 404);
  CHECK_INT(api("GET", "/v1/apps/social/tags/together", &cat, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "posts")), 0);
  CHECK_INT(api("GET", "/v1/notifications", &ann, NULL), 200);
  CHECK_INT(count_in("notifications", "kind", "like"), 0);
}

static void test_blocks(void) {
  char id[64];
  CHECK(post(&ann, "social", "{\"caption\":\"before the block\"}", id));
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", id), 200);
  CHECK_INT(api("POST", "/v1/blocks", &ann, "{\"app\":\"social\",\"target\":\"dan\"}"),
            200);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", id), 404);
  CHECK_INT(apif("POST", &dan, NULL, "/v1/apps/social/posts/%s/like", id), 404);
  CHECK(strstr(feed(&dan, "social", 50, NULL), "before the block") == NULL);
  CHECK_INT(api("GET", "/v1/apps/social/profiles/ann/posts", &dan, NULL), 404);
  /* dan's mention of ann notifies nobody */
  CHECK(post(&dan, "social", "{\"caption\":\"hey @ann\"}", id));
  CHECK_INT(api("GET", "/v1/notifications", &ann, NULL), 200);
  CHECK(strstr(resp.body, "hey @ann") == NULL);
  CHECK_INT(api("DELETE", "/v1/blocks/social/dan", &ann, NULL), 200);
}

static void test_notifications_read(void) {
  CHECK_INT(api("GET", "/v1/notifications?app=social", &ann, NULL), 200);
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(resp.json, "notifications");
  CHECK(cJSON_GetArraySize(l) > 0);
  char top[64];
  snprintf(top, sizeof top, "%s", json_str(cJSON_GetArrayItem(l, 0), "id"));
  CHECK(jnum("unread") > 0);
  char body[100];
  snprintf(body, sizeof body, "{\"up_to\":\"%s\"}", top);
  CHECK_INT(api("POST", "/v1/notifications/read", &ann, body), 200);
  CHECK_INT(api("GET", "/v1/notifications", &ann, NULL), 200);
  CHECK_INT(jnum("unread"), 0);
  CHECK_INT(api("GET", "/v1/notifications?app=chat", &ann, NULL), 400);
}

/* The first comment of the list whose text is text: its id into id. */
static bool comment_id(const char *text, char *id) {
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(resp.json, "comments")) {
    if (strcmp(json_str(c, "text"), text) == 0) {
      snprintf(id, 64, "%s", json_str(c, "id"));
      return true;
    }
  }
  return false;
}

static int ncomments(void) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "comments"));
}

static void test_comments(void) {
  char pid[64], c1[64], c2[64], sp[64], other[64];
  CHECK_INT(api("POST", "/v1/apps/social/follows/ann", &dan, NULL), 200);
  CHECK(post(&ann, "social", "{\"caption\":\"sunset over the harbour\"}", pid));
  CHECK(post(&ann, "social", "{\"caption\":\"another one\"}", other));
  /* a follower's plain comment is ham: shown, counted, notified */
  CHECK_INT(apif("POST", &cat, "{\"text\":\"Beautiful light, where was this taken?\"}",
                 "/v1/apps/social/posts/%s/comments", pid),
            201);
  CHECK(strcmp(ostr("comment", "verdict"), "ham") == 0);
  snprintf(c1, sizeof c1, "%s", ostr("comment", "id"));
  CHECK_INT(apif("POST", &dan,
                 "{\"text\":\"@cat I think it is the old harbour\",\"reply_to\":\"X\"}",
                 "/v1/apps/social/posts/%s/comments", pid),
            400);
  char body[300];
  snprintf(body, sizeof body,
           "{\"text\":\"@cat I think it is the old harbour\",\"reply_to\":\"%s\"}", c1);
  CHECK_INT(apif("POST", &dan, body, "/v1/apps/social/posts/%s/comments", pid), 201);
  CHECK(strcmp(ostr("comment", "verdict"), "ham") == 0);
  CHECK(strcmp(ostr("comment", "reply_to"), c1) == 0);
  snprintf(c2, sizeof c2, "%s", ostr("comment", "id"));
  /* a reply to a comment of another post is refused */
  CHECK_INT(apif("POST", &dan, body, "/v1/apps/social/posts/%s/comments", other), 400);
  /* a stranger's spam is hidden from everyone but its author */
  CHECK_INT(apif("POST", &eve,
                 "{\"text\":\"FREE crypto giveaway!!! claim your $500 now at "
                 "https://bit.ly/x9Kq2 DM me on whatsapp +15550123456\"}",
                 "/v1/apps/social/posts/%s/comments", pid),
            201);
  CHECK(strcmp(ostr("comment", "verdict"), "ham") != 0);
  snprintf(sp, sizeof sp, "%s", ostr("comment", "id"));
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", pid), 200);
  CHECK_INT(onum("post", "comments"), 2);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s/comments", pid), 200);
  CHECK_INT(ncomments(), 2);
  CHECK_INT(apif("GET", &eve, NULL, "/v1/apps/social/posts/%s/comments", pid), 200);
  CHECK_INT(ncomments(), 3);
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/posts/%s/comments?hidden=true", pid),
            200);
  CHECK_INT(ncomments(), 1);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s/comments?hidden=true", pid),
            403);
  /* notifications: the author of the post and of the parent; none for spam */
  CHECK_INT(api("GET", "/v1/notifications", &ann, NULL), 200);
  CHECK_INT(count_in("notifications", "kind", "comment"), 2);
  CHECK_INT(api("GET", "/v1/notifications", &cat, NULL), 200);
  CHECK(count_in("notifications", "kind", "reply") == 1);
  /* an appeal, once; then a reviewer decides */
  CHECK_INT(apif("POST", &dan, "{}", "/v1/apps/social/comments/%s/appeal", sp), 404);
  CHECK_INT(apif("POST", &eve, "{\"note\":\"not spam\"}",
                 "/v1/apps/social/comments/%s/appeal", sp),
            200);
  CHECK(strcmp(ostr("comment", "appeal"), "pending") == 0);
  CHECK_INT(apif("POST", &ann, "{}", "/v1/apps/social/comments/%s/appeal", sp), 409);
  CHECK_INT(apif("POST", &cat, "{}", "/v1/apps/social/comments/%s/appeal", c1), 409);
  CHECK(err_is("not_hidden"));
  CHECK_INT(apif("POST", &dan, "{}", "/v1/apps/social/comments/%s/appeal", c1), 404);
  CHECK_INT(api("GET", "/v1/admin/comments?state=appealed", &ann, NULL), 403);
  CHECK_INT(api("GET", "/v1/admin/comments?state=appealed", &adm, NULL), 200);
  CHECK(comment_id(
      "FREE crypto giveaway!!! claim your $500 now at https://bit.ly/x9Kq2 DM me on "
      "whatsapp +15550123456",
      other));
  CHECK_INT(apif("POST", &adm, "{\"verdict\":\"ham\"}", "/v1/admin/comments/%s", sp),
            200);
  CHECK(strcmp(ostr("comment", "appeal"), "upheld") == 0);
  CHECK(strcmp(ostr("comment", "verdict"), "ham") == 0);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", pid), 200);
  CHECK_INT(onum("post", "comments"), 3);
  CHECK_INT(apif("POST", &adm, "{\"verdict\":\"spam\"}", "/v1/admin/comments/%s", sp),
            200);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", pid), 200);
  CHECK_INT(onum("post", "comments"), 2);
  /* the post's author deletes a thread: its reply goes with it */
  CHECK_INT(apif("DELETE", &dan, NULL, "/v1/apps/social/comments/%s", c1), 404);
  CHECK_INT(apif("DELETE", &ann, NULL, "/v1/apps/social/comments/%s", c1), 200);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s/comments", pid), 200);
  CHECK_INT(ncomments(), 0);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s", pid), 200);
  CHECK_INT(onum("post", "comments"), 0);
  CHECK_INT(api("GET", "/v1/notifications", &cat, NULL), 200);
  CHECK_INT(count_in("notifications", "kind", "reply"), 0);
  (void)c2;
  /* blocked people neither comment nor see comments of the blocker */
  CHECK_INT(apif("POST", &eve, "{\"text\":\"lovely\"}",
                 "/v1/apps/social/posts/%s/comments", pid),
            201);
  CHECK_INT(api("POST", "/v1/blocks", &ann, "{\"app\":\"social\",\"target\":\"eve\"}"),
            200);
  CHECK_INT(apif("POST", &eve, "{\"text\":\"again\"}",
                 "/v1/apps/social/posts/%s/comments", pid),
            404);
  CHECK_INT(apif("GET", &eve, NULL, "/v1/apps/social/posts/%s/comments", pid), 404);
  CHECK_INT(api("POST", "/v1/blocks", &dan, "{\"app\":\"social\",\"target\":\"eve\"}"),
            200);
  CHECK_INT(apif("GET", &dan, NULL, "/v1/apps/social/posts/%s/comments", pid), 200);
  CHECK(strstr(resp.body, "lovely") == NULL);
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/posts/%s/comments", pid), 200);
  CHECK(strstr(resp.body, "lovely") != NULL);
  CHECK_INT(api("DELETE", "/v1/blocks/social/eve", &ann, NULL), 200);
  CHECK_INT(api("DELETE", "/v1/blocks/social/eve", &dan, NULL), 200);
  /* bad input */
  CHECK_INT(
      apif("POST", &cat, "{\"text\":\"\"}", "/v1/apps/social/posts/%s/comments", pid),
      400);
  CHECK_INT(apif("POST", &cat, "{\"text\":5}", "/v1/apps/social/posts/%s/comments", pid),
            400);
  CHECK_INT(api("POST", "/v1/apps/social/posts/123/comments", &cat, "{\"text\":\"hi\"}"),
            404);
}

static void test_reports(void) {
  char pid[64], id[200];
  CHECK(post(&ann, "social", "{\"caption\":\"reported post\"}", pid));
  snprintf(id, sizeof id, "{\"post\":\"%s\",\"reason\":\"spam\",\"note\":\"ads\"}", pid);
  CHECK_INT(api("POST", "/v1/apps/social/reports", &dan, id), 201);
  CHECK(strcmp(ostr("report", "state"), "open") == 0);
  CHECK_INT(api("POST", "/v1/apps/social/reports", &dan, id), 409);
  CHECK_INT(api("POST", "/v1/apps/social/reports", &cat, id), 201);
  CHECK_INT(api("POST", "/v1/apps/social/reports", &cat, "{\"reason\":\"spam\"}"), 400);
  snprintf(id, sizeof id, "{\"post\":\"%s\",\"reason\":\"boring\"}", pid);
  CHECK_INT(api("POST", "/v1/apps/social/reports", &cat, id), 400);
  CHECK_INT(api("GET", "/v1/admin/reports", &dan, NULL), 403);
  CHECK_INT(api("GET", "/v1/admin/reports?state=open", &adm, NULL), 200);
  const cJSON *r =
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp.json, "reports"), 0);
  CHECK(r != NULL);
  CHECK(cJSON_GetObjectItemCaseSensitive(r, "reporters")->valueint == 2);
  CHECK(strcmp(json_str(cJSON_GetObjectItemCaseSensitive(r, "item"), "caption"),
               "reported post") == 0);
  char rid[64];
  snprintf(rid, sizeof rid, "%s", json_str(r, "id"));
  CHECK_INT(apif("POST", &adm, "{\"action\":\"burn\"}", "/v1/admin/reports/%s", rid),
            400);
  CHECK_INT(apif("POST", &adm, "{\"action\":\"remove\"}", "/v1/admin/reports/%s", rid),
            200);
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/posts/%s", pid), 404);
  CHECK_INT(apif("POST", &adm, "{\"action\":\"dismiss\"}", "/v1/admin/reports/%s", rid),
            409);
  CHECK_INT(api("GET", "/v1/admin/reports?state=open", &adm, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "reports")),
            0);
  CHECK_INT(api("GET", "/v1/admin/reports?state=closed", &adm, NULL), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "reports")),
            2);
}

/* Notifications reach an online session at once. */
static void test_push(void) {
  static reader r;
  static ws_msg m;
  CHECK_INT(ws_open(cur->port, &r, ann.s.token, NULL, NULL), 101);
  char pid[64];
  CHECK(post(&ann, "social", "{\"caption\":\"push me\"}", pid));
  CHECK_INT(apif("POST", &cat, NULL, "/v1/apps/social/posts/%s/like", pid), 200);
  bool got = false;
  uint64_t deadline = now_ms() + 5000;
  while (!got && ws_recv_until(&r, &m, deadline))
    got = strstr(m.data, "\"push\":\"notification\"") &&
          strstr(m.data, "\"kind\":\"like\"");
  CHECK(got);
  close(r.fd);
}

/* A w x h PNG made with libvips (malloc'ed; *len its size), or NULL. */
static void *make_png(int w, int h, size_t *len) {
  VipsImage *xyz = NULL, *u8 = NULL, *rgb = NULL;
  void *buf = NULL;
  if (vips_xyz(&xyz, w, h, NULL) == 0 && vips_cast_uchar(xyz, &u8, NULL) == 0 &&
      vips_bandjoin_const1(u8, &rgb, 99, NULL) == 0 &&
      vips_image_write_to_buffer(rgb, ".png", &buf, len, NULL) != 0)
    buf = NULL;
  if (xyz) g_object_unref(xyz);
  if (u8) g_object_unref(u8);
  if (rgb) g_object_unref(rgb);
  vips_error_clear();
  return buf;
}

/* Uploads n bytes as u; the media id into id (65 bytes). */
static bool upload(const user *u, const void *p, size_t n, char *id) {
  char hdr[200];
  snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", u->s.token);
  if (call_hdr_n(cur->port, "POST", "/v1/media", hdr, p, n) != 201) {
    fprintf(stderr, "  upload: %d %s\n", resp.status, resp.body);
    return false;
  }
  snprintf(id, 65, "%s", ostr("media", "id"));
  return strlen(id) == 64;
}

static char img1[65], img2[65];

static void test_media_posts(void) {
  size_t n1 = 0, n2 = 0;
  void *a = make_png(40, 30, &n1), *b = make_png(20, 50, &n2);
  CHECK(a && b);
  CHECK(a && upload(&ann, a, n1, img1));
  CHECK(b && upload(&ann, b, n2, img2));
  g_free(a);
  g_free(b);
  char body[600], pid[64];
  snprintf(
      body, sizeof body,
      "{\"caption\":\"two pictures\",\"media\":[{\"id\":\"%s\",\"alt\":\"a gradient\"},"
      "{\"id\":\"%s\"}]}",
      img1, img2);
  CHECK(post(&ann, "social", body, pid));
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(resp.json, "post"), "media");
  CHECK_INT(cJSON_GetArraySize(m), 2);
  CHECK(strcmp(json_str(cJSON_GetArrayItem(m, 0), "alt"), "a gradient") == 0);
  CHECK(strcmp(json_str(cJSON_GetArrayItem(m, 0), "mime"), "image/png") == 0);
  CHECK_INT(
      (int)cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 1), "height")->valueint,
      50);
  /* the same media twice in a post is refused */
  snprintf(body, sizeof body, "{\"media\":[{\"id\":\"%s\"},{\"id\":\"%s\"}]}", img1,
           img1);
  CHECK_INT(api("POST", "/v1/apps/social/posts", &ann, body), 400);
  /* followers fetch the images */
  CHECK_INT(apif("GET", &cat, NULL, "/v1/media/%s", img1), 200);
  CHECK(strstr(resp.head, "image/png") != NULL);
  /* the post holds its media: references counted, dropped on delete */
  CHECK_INT(server_db_long(&srv, "SELECT SUM(refs) FROM media", false), 2);
  CHECK_INT(apif("DELETE", &ann, NULL, "/v1/apps/social/posts/%s", pid), 200);
  long refs = server_db_long(&srv, "SELECT SUM(refs) FROM media", false);
  CHECK_INT(refs, 0);
}

static void test_stories(void) {
  char body[300], sid[64];
  snprintf(body, sizeof body, "{\"media\":{\"id\":\"%064d\"}}", 3);
  CHECK_INT(api("POST", "/v1/apps/social/stories", &ann, body), 404);
  CHECK(err_is("unknown_media"));
  snprintf(body, sizeof body,
           "{\"media\":{\"id\":\"%s\",\"alt\":\"dawn\"},\"caption\":\"today\"}", img1);
  CHECK_INT(api("POST", "/v1/apps/social/stories", &ann, body), 201);
  snprintf(sid, sizeof sid, "%s", ostr("story", "id"));
  CHECK(onum("story", "expires_at") - onum("story", "created_at") == 24L * 3600 * 1000);
  /* cat follows ann: the story is in cat's tray, not in eve's */
  CHECK_INT(api("GET", "/v1/apps/social/stories", &cat, NULL), 200);
  CHECK(strstr(resp.body, sid) != NULL);
  CHECK_INT(api("GET", "/v1/apps/social/stories", &eve, NULL), 200);
  CHECK(strstr(resp.body, sid) == NULL);
  CHECK_INT(apif("POST", &eve, NULL, "/v1/apps/social/stories/%s/view", sid), 404);
  CHECK_INT(apif("POST", &cat, NULL, "/v1/apps/social/stories/%s/view", sid), 200);
  CHECK_INT(apif("POST", &cat, NULL, "/v1/apps/social/stories/%s/view", sid), 200);
  CHECK_INT(apif("POST", &dan, NULL, "/v1/apps/social/stories/%s/view", sid), 200);
  /* who viewed it: the author only */
  CHECK_INT(apif("GET", &cat, NULL, "/v1/apps/social/stories/%s/viewers", sid), 403);
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/stories/%s/viewers", sid), 200);
  CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "viewers")),
            2);
  CHECK(count_in("viewers", "at", "x") == 0);
  CHECK_INT(api("GET", "/v1/apps/social/stories", &ann, NULL), 200);
  CHECK(strstr(resp.body, "\"views\":2") != NULL);
  /* 24 hours later (the server's test clock, no sleeping) it is gone */
  CHECK_INT(api("POST", "/v1/admin/clock", &ann, "{\"advance_ms\":1000}"), 403);
  CHECK_INT(api("POST", "/v1/admin/clock", &adm, "{\"advance_ms\":0}"), 400);
  CHECK_INT(api("POST", "/v1/admin/clock", &adm, "{\"advance_ms\":86300000}"), 200);
  CHECK_INT(api("GET", "/v1/apps/social/stories", &cat, NULL), 200);
  CHECK(strstr(resp.body, sid) != NULL);
  CHECK_INT(api("POST", "/v1/admin/clock", &adm, "{\"advance_ms\":100001}"), 200);
  CHECK_INT(api("GET", "/v1/apps/social/stories", &cat, NULL), 200);
  CHECK(strstr(resp.body, sid) == NULL);
  CHECK_INT(apif("POST", &cat, NULL, "/v1/apps/social/stories/%s/view", sid), 404);
  CHECK_INT(apif("GET", &ann, NULL, "/v1/apps/social/stories/%s/viewers", sid), 404);
  /* a close-friends story, and blocks */
  snprintf(body, sizeof body,
           "{\"media\":{\"id\":\"%s\"},\"visibility\":\"close_friends\"}", img2);
  CHECK_INT(api("POST", "/v1/apps/social/stories", &ann, body), 201);
  snprintf(sid, sizeof sid, "%s", ostr("story", "id"));
  CHECK_INT(api("GET", "/v1/apps/social/stories", &cat, NULL), 200); /* on the list */
  CHECK(strstr(resp.body, sid) != NULL);
  CHECK_INT(api("GET", "/v1/apps/social/stories", &dan, NULL), 200); /* a follower only */
  CHECK(strstr(resp.body, sid) == NULL);
  CHECK_INT(api("POST", "/v1/blocks", &cat, "{\"app\":\"social\",\"target\":\"ann\"}"),
            200);
  CHECK_INT(api("GET", "/v1/apps/social/stories", &cat, NULL), 200);
  CHECK(strstr(resp.body, sid) == NULL);
  CHECK_INT(apif("POST", &cat, NULL, "/v1/apps/social/stories/%s/view", sid), 404);
  CHECK_INT(api("DELETE", "/v1/blocks/social/ann", &cat, NULL), 200);
  /* the block ended the close friendship and the follow */
  CHECK_INT(api("GET", "/v1/apps/social/stories", &cat, NULL), 200);
  CHECK(strstr(resp.body, sid) == NULL);
  CHECK_INT(api("GET", "/v1/apps/social/close-friends", &ann, NULL), 200);
  CHECK_INT(
      cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp.json, "close_friends")),
      0);
  /* the test clock is refused by a server without it */
  cur = &srv0;
  CHECK_INT(api("POST", "/v1/admin/clock", &adm0, "{\"advance_ms\":1000}"), 403);
  cur = &srv;
}

/* The fan-out write buffer and purge list (server/timelines.h): rows a
 * stopped server left in timeline_buffer are read as timeline rows, and
 * the next start moves them into timelines (a row in both tables counts
 * once); a deleted post's rows are purged from both tables. */
#define PENDING_SQL                                                                      \
  "SELECT (SELECT COUNT(*) FROM timeline_buffer) + (SELECT COUNT(*) FROM "               \
  "timeline_purge)"
static void test_timeline_buffer(void) {
  char was[2][1024], a8[64];
  CHECK(post(&ann, "social", "{\"caption\":\"a8\"}", a8));
  snprintf(was[0], sizeof was[0], "%s", feed(&cat, "social", 50, NULL));
  snprintf(was[1], sizeof was[1], "%s", feed(&dan, "social", 50, NULL));
  kill(srv.pid, SIGTERM);
  int st = server_wait(&srv, 20000);
  CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  long total = server_db_long(&srv, "SELECT COUNT(*) FROM timelines", false);
  CHECK(total > 0);
  CHECK_INT(server_db_long(&srv, "SELECT COUNT(*) FROM timeline_buffer", false), 0);
  /* every row into the buffer; half of them kept in timelines too */
  CHECK_INT(
      server_db_long(&srv,
                     "INSERT INTO timeline_buffer SELECT owner_id, app, post_id FROM"
                     " timelines; DELETE FROM timelines WHERE post_id % 2 = 0;"
                     " SELECT COUNT(*) FROM timeline_buffer",
                     true),
      total);
  CHECK(server_db_long(&srv, "SELECT COUNT(*) FROM timelines", false) < total);
  CHECK(server_start(&srv, "public", false, NULL, NULL));
  CHECK(strcmp(feed(&cat, "social", 50, NULL), was[0]) == 0);
  CHECK(strcmp(feed(&dan, "social", 50, NULL), was[1]) == 0);
  /* deleting a post takes its rows out of both tables */
  CHECK_INT(apif("DELETE", &ann, NULL, "/v1/apps/social/posts/%s", a8), 200);
  CHECK(strstr(feed(&dan, "social", 50, NULL), "a8") == NULL);
  uint64_t deadline = now_ms() + 10000;
  while (server_db_long(&srv, PENDING_SQL, false) != 0 && now_ms() < deadline) tick();
  CHECK_INT(server_db_long(&srv, PENDING_SQL, false), 0);
  CHECK_INT(
      server_db_long(&srv,
                     "SELECT COUNT(*) FROM timelines t WHERE NOT EXISTS (SELECT 1 FROM"
                     " posts p WHERE p.id = t.post_id)",
                     false),
      0);
  CHECK(server_db_long(&srv, "SELECT COUNT(*) FROM timelines", false) < total);
  CHECK(strcmp(feed(&cat, "social", 50, NULL), was[0]) == 0);
  /* a new post goes through the buffer and is moved too */
  char id[64];
  CHECK(post(&ann, "social", "{\"caption\":\"a9\"}", id));
  CHECK(strncmp(feed(&dan, "social", 1, NULL), "a9", 2) == 0);
  deadline = now_ms() + 10000;
  while (server_db_long(&srv, PENDING_SQL, false) != 0 && now_ms() < deadline) tick();
  CHECK_INT(server_db_long(&srv, PENDING_SQL, false), 0);
  CHECK(server_db_long(&srv, "SELECT COUNT(*) FROM timelines", false) >= total);
  CHECK(strncmp(feed(&dan, "social", 1, NULL), "a9", 2) == 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0 || VIPS_INIT("test_public") != 0 || !find_binary()) {
    fprintf(stderr, "tesserad not found (set TSR_BUILD)\n");
    printf("public: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  static const char *const extra[] = {"--admins", "admin", "--test-clock", "on", NULL};
  static const char *const extra0[] = {"--admins", "admin", "--fanout-threshold", "0",
                                       NULL};
  if (!server_start(&srv, "public", true, "2", extra) ||
      !server_start(&srv0, "public0", true, "1", extra0)) {
    fprintf(stderr, "tesserad did not start; logs %s %s\n", srv.log, srv0.log);
    printf("public: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_setup);
  RUN(test_post_and_read);
  RUN(test_bad_input);
  RUN(test_feeds);
  RUN(test_fanout_on_read);
  RUN(test_cross_post_and_likes);
  RUN(test_blocks);
  RUN(test_notifications_read);
  RUN(test_comments);
  RUN(test_reports);
  RUN(test_push);
  RUN(test_media_posts);
  RUN(test_stories);
  RUN(test_timeline_buffer);
  cJSON_Delete(resp.json);
  resp.json = NULL;
  server_stop(&srv0, true);
  server_stop(&srv, true);
  vips_shutdown();
  return test_report("public");
}
