/* libtessera's public-life calls (src/client/public.c): the local checks
 * (nothing queued, the callback never called), then against a real
 * tesserad: a PNG uploaded as media (the answer parsed into tsr_media), a
 * file that is no image refused with unsupported_media, a missing file
 * and a directory refused before anything is sent, a post with two images
 * and alt texts made with the asynchronous call (its callback called
 * once), and the paths the other calls build (a tag given with '#' and
 * upper case, a handle with '@', cursors and limits) reaching the right
 * routes. */
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_harness.h"
#include "server_harness.h"
#include "tessera/tessera.h"
#include "test.h"

static server srv;
static char tmpdir[64];
static tsr_client *ann, *ben;
static char png[128], png2[128], text[128];

/* A 16x16 red PNG. */
static const unsigned char red_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x08, 0x02, 0x00, 0x00,
    0x00, 0x90, 0x91, 0x68, 0x36, 0x00, 0x00, 0x00, 0x16, 0x49, 0x44, 0x41, 0x54, 0x78,
    0xda, 0x63, 0x38, 0xa1, 0xa1, 0x41, 0x12, 0x62, 0x18, 0xd5, 0x30, 0xaa, 0x61, 0xf8,
    0x6a, 0x00, 0x00, 0x7c, 0x33, 0x18, 0x10, 0xfa, 0x24, 0xa3, 0xe5, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

/* An 8x4 blue PNG. */
static const unsigned char blue_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02,
    0x00, 0x00, 0x00, 0x3c, 0xaf, 0xe9, 0xa7, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44,
    0x41, 0x54, 0x78, 0xda, 0x63, 0xd0, 0xd0, 0x38, 0x81, 0x15, 0x31, 0x50, 0x4f,
    0x02, 0x00, 0xc2, 0xbe, 0x23, 0x01, 0xe1, 0xdc, 0x08, 0xa4, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

static bool write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(p, 1, n, f) == n;
  if (f && fclose(f) != 0) ok = false;
  return ok;
}

typedef struct {
  int calls;
  int err, status;
  char body[4096];
} got;

static void on_result(void *arg, const tsr_result *res) {
  got *g = arg;
  g->calls++;
  g->err = res->err;
  g->status = res->status;
  size_t n = res->body_len < sizeof g->body - 1 ? res->body_len : sizeof g->body - 1;
  memcpy(g->body, res->body, n);
  g->body[n] = '\0';
}

/* Every check before a request is queued. */
static void test_arguments(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/nobody.db", tmpdir);
  tsr_client *c = test_client_open((uint16_t)srv.port, path, 5000);
  CHECK(c != NULL);
  if (!c) return;
  got g = {0};
  const char *apps2[] = {"social", "chat"};
  tsr_post_media m = {"abc", NULL};
  tsr_post_params bad_vis = {.caption = "x", .visibility = "everyone"};
  tsr_post_params bad_app = {.caption = "x", .apps = apps2, .n_apps = 2};
  tsr_post_params empty = {.location = "somewhere"};
  tsr_post_params eleven = {.caption = "x", .media = &m, .n_media = 11};
  tsr_post_params ok = {.caption = "x"};
  CHECK_ERR(tsr_post_create(c, "chat", &ok, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_create(c, "social", NULL, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_create(c, "social", &bad_vis, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_create(c, "social", &bad_app, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_create(c, "social", &empty, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_create(c, "social", &eleven, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_get(c, "social", "12a", on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_get(c, "social", "", on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_get(c, "social", "123456789012345678901", on_result, &g),
            TSR_EINVAL);
  CHECK_ERR(tsr_post_edit(c, "social", "1", NULL, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_likes(c, "social", "1", NULL, 51, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_post_likes(c, "social", "1", "x", 0, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_comment_create(c, "social", "1", "", NULL, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_comment_create(c, "social", "1", "hi", "x", on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_comments_list(c, "social", "1", NULL, 101, 0, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_feed_home(c, "messenger", "9x", 0, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_feed_home(c, "social", NULL, 51, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_feed_profile(c, "social", "@", NULL, 0, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_feed_tag(c, "social", "#", NULL, 0, on_result, &g), TSR_EINVAL);
  char longkey[300];
  memset(longkey, 'a', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  CHECK_ERR(tsr_feed_profile(c, "social", longkey, NULL, 0, on_result, &g), TSR_ELIMIT);
  CHECK_ERR(tsr_follow(c, "social", longkey, 1, on_result, &g), TSR_ELIMIT);
  tsr_story_params no_media = {.caption = "x"};
  CHECK_ERR(tsr_story_post(c, "social", &no_media, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_notifications_list(c, "chat", NULL, 0, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_notifications_list(c, NULL, NULL, 101, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_notifications_read(c, NULL, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_report(c, "social", "1", "2", "spam", NULL, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_report(c, "social", NULL, NULL, "spam", NULL, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_report(c, "social", "1", NULL, "boring", NULL, on_result, &g),
            TSR_EINVAL);
  CHECK_ERR(tsr_follow(c, "chat", "bob", 1, on_result, &g), TSR_EINVAL);
  CHECK_ERR(tsr_media_upload(c, NULL, on_result, &g), TSR_EINVAL);
  /* Well-formed, but nobody is logged in. */
  CHECK_ERR(tsr_post_create(c, "social", &ok, on_result, &g), TSR_ESTATE);
  CHECK_ERR(tsr_feed_home(c, "social", NULL, 0, on_result, &g), TSR_ESTATE);
  CHECK_ERR(tsr_media_upload(c, png, on_result, &g), TSR_ESTATE);
  CHECK_INT(tsr_client_pending(c), 0);
  CHECK_INT(g.calls, 0);
  tsr_client_free(c);
}

static void test_setup(void) {
  char path[128];
  tsr_session_info info;
  snprintf(path, sizeof path, "%s/ann.db", tmpdir);
  ann = test_client_open((uint16_t)srv.port, path, 10000);
  CHECK(test_social_person(ann, "ann", true, 0, &info));
  snprintf(path, sizeof path, "%s/ben.db", tmpdir);
  ben = test_client_open((uint16_t)srv.port, path, 10000);
  CHECK(test_social_person(ben, "ben", true, 0, &info));
  tsr_reply r = {0};
  CHECK_OK(tsr_follow_sync(ben, "social", "@ann", 1, &r));
  CHECK(r.body && strstr(r.body, "\"following\""));
  tsr_reply_clear(&r);
}

static void test_media(void) {
  tsr_media m;
  memset(&m, 0, sizeof m);
  tsr_reply r = {0};
  CHECK_OK(tsr_media_upload_sync(ann, png, &m, &r));
  CHECK_INT(r.status, 201);
  CHECK_INT(strlen(m.id), 64);
  CHECK(strspn(m.id, "0123456789abcdef") == 64);
  CHECK(!strcmp(m.kind, "image"));
  CHECK(!strcmp(m.mime, "image/png"));
  CHECK_INT(m.width, 16);
  CHECK_INT(m.height, 16);
  CHECK(m.size > 0);
  tsr_reply_clear(&r);
  /* Not an image: the server's refusal, *out untouched. */
  tsr_media before = m;
  CHECK_ERR(tsr_media_upload_sync(ann, text, &m, &r), TSR_EPROTOCOL);
  CHECK_INT(r.status, 415);
  CHECK(r.code && !strcmp(r.code, "unsupported_media"));
  CHECK(!memcmp(&before, &m, sizeof m));
  tsr_reply_clear(&r);
  /* A body of many pieces (5 MiB, streamed 64 KiB at a time): the server
   * reads all of it before it looks at the type, so its 415 shows the
   * whole body arrived framed right; the next call on the same client
   * still works. */
  char big[160];
  snprintf(big, sizeof big, "%s/big.bin", tmpdir);
  FILE *f = fopen(big, "wb");
  CHECK(f != NULL);
  for (int i = 0; f && i < 5 * 1024; i++) {
    uint8_t kb[1024];
    randombytes_buf(kb, sizeof kb);
    fwrite(kb, 1, sizeof kb, f);
  }
  if (f) fclose(f);
  CHECK_ERR(tsr_media_upload_sync(ann, big, &m, &r), TSR_EPROTOCOL);
  CHECK_INT(r.status, 415);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_media_upload_sync(ann, png, &m, &r));
  CHECK_INT(r.status, 201);
  tsr_reply_clear(&r);
  /* No such file: nothing sent. */
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing.png", tmpdir);
  CHECK_ERR(tsr_media_upload_sync(ann, missing, &m, &r), TSR_EIO);
  CHECK_INT(r.done, 0);
  CHECK_ERR(tsr_media_upload_sync(ann, tmpdir, NULL, NULL), TSR_EIO); /* a directory */
}

/* The id of the first post in a {"posts": [...]} or {"post": ...} body. */
static void first_id(const char *body, char out[32]) {
  out[0] = '\0';
  const char *p = body ? strstr(body, "\"id\":\"") : NULL;
  if (p) snprintf(out, 32, "%.*s", (int)strcspn(p + 6, "\""), p + 6);
}

static void test_post_async(void) {
  tsr_media m, m2;
  CHECK_OK(tsr_media_upload_sync(ann, png, &m, NULL));
  CHECK_OK(tsr_media_upload_sync(ann, png2, &m2, NULL));
  CHECK_INT(m2.width, 8);
  tsr_post_media media[2] = {{m.id, "first"}, {m2.id, "second"}};
  const char *apps[] = {"social"};
  tsr_post_params p = {.caption = "Lake #Sunrise with @ben",
                       .location = "Lake Geneva",
                       .visibility = "followers",
                       .apps = apps,
                       .n_apps = 1,
                       .media = media,
                       .n_media = 2};
  got g = {0};
  CHECK_OK(tsr_post_create(ann, "social", &p, on_result, &g));
  CHECK_INT(g.calls, 0); /* only from the driving calls */
  CHECK_INT(tsr_client_run_until_idle(ann, 10000), 0);
  CHECK_INT(g.calls, 1);
  CHECK_INT(g.err, 0);
  CHECK_INT(g.status, 201);
  if (g.status != 201) fprintf(stderr, "  answer: %s\n", g.body);
  CHECK(strstr(g.body, "\"alt\":\"second\"") != NULL);
  CHECK(strstr(g.body, "\"visibility\":\"followers\"") != NULL);
  char id[32];
  first_id(strstr(g.body, "\"post\""), id);
  CHECK_INT(strlen(id) > 0, 1);
  /* The follower's feed, a page of one, and the hashtag page: a
   * followers-only post is on no hashtag page. */
  tsr_reply r = {0};
  CHECK_OK(tsr_feed_home_sync(ben, "social", NULL, 1, &r));
  char fid[32];
  first_id(r.body, fid);
  CHECK(!strcmp(fid, id));
  tsr_reply_clear(&r);
  CHECK_OK(tsr_feed_home_sync(ben, "social", id, 0, &r)); /* before it: nothing */
  CHECK(strstr(r.body, "\"posts\":[]") != NULL);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_feed_tag_sync(ben, "social", "#SUNRISE", NULL, 5, &r));
  CHECK(strstr(r.body, "\"posts\":[]") != NULL);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_feed_profile_sync(ben, "social", "@ann", NULL, 0, &r));
  first_id(r.body, fid);
  CHECK(!strcmp(fid, id));
  tsr_reply_clear(&r);
  /* A public one is on it. */
  tsr_post_params pub = {.caption = "again #sunrise"};
  CHECK_OK(tsr_post_create_sync(ann, "social", &pub, &r));
  first_id(strstr(r.body, "\"post\""), id);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_feed_tag_sync(ben, "social", "#SUNRISE", NULL, 5, &r));
  first_id(r.body, fid);
  CHECK(!strcmp(fid, id));
  tsr_reply_clear(&r);
  /* Like, the likers, a comment, the list. */
  CHECK_OK(tsr_post_like_sync(ben, "social", id, 1, &r));
  CHECK(strstr(r.body, "\"likes\":1") != NULL);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_post_likes_sync(ann, "social", id, NULL, 10, &r));
  CHECK(strstr(r.body, "\"handle\":\"ben\"") != NULL);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_comment_create_sync(ben, "social", id, "nice one", NULL, &r));
  CHECK_INT(r.status, 201);
  tsr_reply_clear(&r);
  CHECK_OK(tsr_comments_list_sync(ann, "social", id, NULL, 10, 0, &r));
  CHECK(strstr(r.body, "\"text\":\"nice one\"") != NULL);
  tsr_reply_clear(&r);
  CHECK_ERR(tsr_post_delete_sync(ben, "social", id, &r), TSR_ESENDER); /* forbidden */
  tsr_reply_clear(&r);
  CHECK_OK(tsr_post_delete_sync(ann, "social", id, NULL));
  CHECK_ERR(tsr_post_get_sync(ben, "social", id, &r), TSR_ENOTFOUND);
  CHECK(r.code && !strcmp(r.code, "not_found"));
  tsr_reply_clear(&r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tsr-cpub-XXXXXX");
  if (!mkdtemp(tmpdir) || tsr_client_global_init() != 0 || !find_binary()) {
    fprintf(stderr, "no temporary directory, crypto or tesserad (set TSR_BUILD)\n");
    printf("client_public: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  snprintf(png, sizeof png, "%s/red.png", tmpdir);
  snprintf(png2, sizeof png2, "%s/blue.png", tmpdir);
  snprintf(text, sizeof text, "%s/notes.txt", tmpdir);
  static const char *extra[] = {"--rate-per-account", "0", "--rate-per-address", "0",
                                NULL};
  if (!write_file(png, red_png, sizeof red_png) ||
      !write_file(png2, blue_png, sizeof blue_png) ||
      !write_file(text, "just some words\n", 16) ||
      !server_start(&srv, "cpub", true, "2", extra)) {
    fprintf(stderr, "tesserad did not start; log %s\n", srv.log);
    printf("client_public: 0 passed, 1 failed, 0 skipped\n");
    return 1;
  }
  RUN(test_arguments);
  RUN(test_setup);
  RUN(test_media);
  RUN(test_post_async);
  tsr_client_free(ann);
  tsr_client_free(ben);
  server_stop(&srv, true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return test_report("client_public");
}
