/* Public life in the CLI (tessera.h "Public life"; docs/protocol.md "Public life"):
 * `tessera post|story|feed|comment|comments|like|likes|follow|unfollow|
 * notifications|report|close-friends`. Each command does its calls with
 * the blocking API and prints the server's answer: as is with --json
 * (before or after the command), else in a form for people. Errors as for
 * every command: one "error: CODE: message" line and exit status 1. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "proto/json.h"

/* ---- arguments ------------------------------------------------------------ */

/* Options every public command takes: --app A and --json. */
static bool common_opt(int argc, char **argv, int *i, const char **app) {
  if (!strcmp(argv[*i], "--json")) {
    json_out = true;
    return true;
  }
  if (strcmp(argv[*i], "--app")) return false;
  const char *v = optval(argc, argv, i);
  if (strcmp(v, "social") && strcmp(v, "messenger"))
    die("usage", "--app takes social or messenger (chat has no public content)");
  *app = v;
  return true;
}

static const char *need_id(const char *v, const char *what) {
  size_t n = strlen(v);
  bool ok = n >= 1 && n <= 20;
  for (size_t i = 0; ok && i < n; i++) ok = v[i] >= '0' && v[i] <= '9';
  if (!ok) die("usage", "%s is not a %s id (a decimal number)", v, what);
  return v;
}

static unsigned need_limit(const char *v, unsigned max) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(v, &end, 10);
  if (errno || !v[0] || *end || v[0] == '-' || n < 1 || n > max)
    die("usage", "--limit takes a number from 1 to %u", max);
  return (unsigned)n;
}

static const char *need_visibility(const char *v) {
  if (strcmp(v, "public") && strcmp(v, "followers") && strcmp(v, "close_friends"))
    die("usage", "--visibility takes public, followers or close_friends, not %s", v);
  return v;
}

/* --to social,messenger: into apps[0..2), returns the count. */
static size_t need_apps(const char *v, const char *apps[2]) {
  size_t n = 0;
  const char *s = v;
  bool ok = *s != '\0';
  while (ok && *s) {
    size_t len = strcspn(s, ",");
    const char *a = len == 6 && !strncmp(s, "social", 6)      ? "social"
                    : len == 9 && !strncmp(s, "messenger", 9) ? "messenger"
                                                              : NULL;
    ok = a && n < 2 && !(n == 1 && !strcmp(apps[0], a));
    if (ok) apps[n++] = a;
    s += len;
    if (*s == ',') s++;
  }
  if (!ok) die("usage", "--to takes social, messenger or social,messenger, not %s", v);
  return n;
}

/* Dies unless path is a regular file we can open: checked before any
 * upload, so that a typo leaves no media behind. */
static void need_file(const char *path) {
  struct stat st;
  FILE *f = fopen(path, "rb");
  bool ok = f && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
  if (f) fclose(f);
  if (!ok) die("io", "cannot read %s (a regular file)", path);
}

/* ---- answers ---------------------------------------------------------------- */

/* One parsed answer. */
typedef struct {
  const char *b;
  json_token *t;
} doc;

static doc parse(const tsr_reply *r) {
  size_t cap = r->body_len / 2 + 8;
  doc d = {r->body, malloc(cap * sizeof(json_token))};
  if (!d.t || json_parse(r->body, r->body_len, d.t, cap, NULL) <= 0 ||
      d.t[0].type != JSON_OBJECT)
    die("bad_response", "unparsable answer from the server");
  return d;
}

static int get(const doc *d, int obj, const char *key) {
  return obj < 0 || d->t[obj].type != JSON_OBJECT ? -1
                                                  : json_object_get(d->b, d->t, obj, key);
}

/* The string member key of obj, malloc'ed ("" when absent or not a
 * string); free it. */
static char *str(const doc *d, int obj, const char *key) {
  int i = get(d, obj, key);
  size_t cap = i >= 0 && d->t[i].type == JSON_STRING ? d->t[i].size + 1 : 1;
  char *s = malloc(cap);
  if (!s) die("local", "out of memory");
  s[0] = '\0';
  if (cap > 1 && json_get_string(d->b, d->t, i, s, cap, NULL, 0) != 0) s[0] = '\0';
  return s;
}

/* A string member into out (cut to cap). */
static void str_in(const doc *d, int obj, const char *key, char *out, size_t cap) {
  char *s = str(d, obj, key);
  snprintf(out, cap, "%s", s);
  free(s);
}

static int64_t num(const doc *d, int obj, const char *key) {
  int i = get(d, obj, key);
  int64_t v = 0;
  if (i < 0 || json_get_i64(d->b, d->t, i, &v) != 0) v = 0;
  return v;
}

static bool flag(const doc *d, int obj, const char *key) {
  int i = get(d, obj, key);
  bool v = false;
  if (i >= 0) json_get_bool(d->t, i, &v);
  return v;
}

/* Text from others on the terminal: control characters (escape sequences
 * included) become '?'; a newline starts an indented line. */
static void put_text(const char *s, const char *indent) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '\n')
      printf("\n%s", indent);
    else
      fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, stdout);
  }
}

/* Milliseconds since the epoch as "2026-11-27 10:26 UTC". */
static void when(int64_t ms, char *out, size_t cap) {
  time_t tt = (time_t)(ms / 1000);
  struct tm tm;
  if (ms <= 0 || !gmtime_r(&tt, &tm) ||
      strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
    snprintf(out, cap, "-");
}

/* A profile object as "@key (Name)". */
static void who(const doc *d, int prof) {
  char key[256], name[256];
  str_in(d, prof, "handle", key, sizeof key);
  if (!key[0]) str_in(d, prof, "username", key, sizeof key);
  str_in(d, prof, "name", name, sizeof name);
  fputc('@', stdout);
  put_text(key[0] ? key : "?", "");
  if (name[0]) {
    fputs(" (", stdout);
    put_text(name, "");
    fputc(')', stdout);
  }
}

/* A string array as "a+b". */
static void join(const doc *d, int arr, const char *sep) {
  if (arr < 0 || d->t[arr].type != JSON_ARRAY) return;
  bool first = true;
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    char v[128] = "";
    if (d->t[e].type == JSON_STRING) json_get_string(d->b, d->t, e, v, sizeof v, NULL, 0);
    printf("%s", first ? "" : sep);
    put_text(v, "");
    first = false;
  }
}

static void counted(int64_t n, const char *one, const char *many) {
  printf("%lld %s", (long long)n, n == 1 ? one : many);
}

/* A post:
 *   post ID by @ann (Ann), 2026-11-27 10:26 UTC, public, in social+messenger
 *     the caption
 *     at Lake Geneva
 *     media: image 64x64 "alt"; image 32x32
 *     3 likes, 1 comment, 12 views; you liked it; edited 2026-11-27 10:30 UTC */
static void print_post(const doc *d, int p) {
  char id[32], vis[32], t[48];
  str_in(d, p, "id", id, sizeof id);
  str_in(d, p, "visibility", vis, sizeof vis);
  when(num(d, p, "created_at"), t, sizeof t);
  printf("post %s by ", id);
  who(d, get(d, p, "author"));
  printf(", %s, %s, in ", t, vis);
  join(d, get(d, p, "apps"), "+");
  fputc('\n', stdout);
  char *cap = str(d, p, "caption"), *loc = str(d, p, "location");
  if (cap[0]) {
    fputs("  ", stdout);
    put_text(cap, "  ");
    fputc('\n', stdout);
  }
  if (loc[0]) {
    fputs("  at ", stdout);
    put_text(loc, "");
    fputc('\n', stdout);
  }
  free(cap);
  free(loc);
  int m = get(d, p, "media");
  if (m >= 0 && d->t[m].type == JSON_ARRAY && d->t[m].size > 0) {
    fputs("  media:", stdout);
    const char *sep = " ";
    for (int e = json_first_child(d->t, m); e >= 0; e = json_next_sibling(d->t, m, e)) {
      char kind[16], alt[512];
      str_in(d, e, "kind", kind, sizeof kind);
      str_in(d, e, "alt", alt, sizeof alt);
      printf("%s%s %lldx%lld", sep, kind, (long long)num(d, e, "width"),
             (long long)num(d, e, "height"));
      if (alt[0]) {
        fputs(" \"", stdout);
        put_text(alt, "");
        fputc('"', stdout);
      }
      sep = "; ";
    }
    fputc('\n', stdout);
  }
  fputs("  ", stdout);
  counted(num(d, p, "likes"), "like", "likes");
  fputs(", ", stdout);
  counted(num(d, p, "comments"), "comment", "comments");
  fputs(", ", stdout);
  counted(num(d, p, "views"), "view", "views");
  if (flag(d, p, "liked")) fputs("; you liked it", stdout);
  int64_t ed = num(d, p, "edited_at");
  if (ed > 0) {
    when(ed, t, sizeof t);
    printf("; edited %s", t);
  }
  fputc('\n', stdout);
}

/* A comment on one line: ID  @who  TIME  [verdict, appeal] text, and
 * "  (reply to PARENT)" when parent is not "". */
static void print_comment(const doc *d, int cm, const char *indent, const char *parent) {
  char id[32], verdict[16], appeal[16], t[48];
  str_in(d, cm, "id", id, sizeof id);
  str_in(d, cm, "verdict", verdict, sizeof verdict);
  str_in(d, cm, "appeal", appeal, sizeof appeal);
  when(num(d, cm, "created_at"), t, sizeof t);
  printf("%s%s  ", indent, id);
  who(d, get(d, cm, "author"));
  printf("  %s  ", t);
  if (verdict[0] && strcmp(verdict, "ham")) {
    printf("[%s", verdict);
    if (appeal[0]) printf(", appeal %s", appeal);
    fputs("] ", stdout);
  }
  char *text = str(d, cm, "text");
  put_text(text, "    ");
  free(text);
  if (parent[0]) printf("  (reply to %s)", parent);
  fputc('\n', stdout);
}

/* Runs on the reply of a finished call: dies on failure, else prints it
 * as is with --json or with show for people. Returns 0. */
static int done(int rc, tsr_reply *r, const char *what, void (*show)(const doc *d)) {
  if (rc == TSR_ESTATE && !r->done) die("state", "not logged in");
  if (rc == TSR_EINVAL && !r->done) die("usage", "%s: invalid argument", what);
  if (rc) die_call(rc, r, what);
  if (json_out) {
    print_body(r);
  } else {
    doc d = parse(r);
    show(&d);
    free(d.t);
  }
  tsr_reply_clear(r);
  return 0;
}

/* ---- posts -------------------------------------------------------------------- */

static void show_post(const doc *d) {
  int p = get(d, 0, "post");
  if (p < 0) die("bad_response", "no post in the answer");
  print_post(d, p);
}

static void show_deleted(const doc *d) {
  (void)d;
  printf("deleted\n");
}

/* Uploads one file, dies on failure; the id goes into id. */
static void upload(tsr_client *c, const char *path, char id[TSR_MEDIA_ID_SIZE]) {
  tsr_media m;
  tsr_reply r = {0};
  int rc = tsr_media_upload_sync(c, path, &m, &r);
  if (rc == TSR_EIO && !r.done) die("io", "cannot read %s (a regular file)", path);
  if (rc == TSR_ELIMIT && !r.done) die("too_large", "%s is larger than 1 GiB", path);
  if (rc == TSR_ESTATE && !r.done) die("state", "not logged in");
  if (rc == TSR_ENOMEM && !r.done) die("local", "not enough memory to read %s", path);
  if (rc) die_call(rc, &r, "media upload");
  tsr_reply_clear(&r);
  memcpy(id, m.id, TSR_MEDIA_ID_SIZE);
}

/* post [--app A] --caption T [--image F [--alt T]]... [--video F [--alt T]]
 *      [--location L] [--visibility V] [--to social,messenger] */
static int post_create(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *files[TSR_POST_MEDIA_MAX];
  const char *apps[2] = {NULL, NULL};
  tsr_post_media media[TSR_POST_MEDIA_MAX];
  tsr_post_params p = {.media = media, .apps = apps};
  size_t n = 0, videos = 0;
  for (int i = 0; i < argc; i++) {
    const char *o = argv[i];
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(o, "--caption")) {
      p.caption = optval(argc, argv, &i);
    } else if (!strcmp(o, "--location")) {
      p.location = optval(argc, argv, &i);
    } else if (!strcmp(o, "--visibility")) {
      p.visibility = need_visibility(optval(argc, argv, &i));
    } else if (!strcmp(o, "--to")) {
      p.n_apps = need_apps(optval(argc, argv, &i), apps);
    } else if (!strcmp(o, "--image") || !strcmp(o, "--video")) {
      if (n == TSR_POST_MEDIA_MAX) die("usage", "a post holds at most ten images");
      videos += o[2] == 'v';
      files[n] = optval(argc, argv, &i);
      media[n++] = (tsr_post_media){NULL, NULL};
    } else if (!strcmp(o, "--alt")) {
      if (n == 0) die("usage", "--alt goes after the --image or --video it describes");
      media[n - 1].alt = optval(argc, argv, &i);
    } else {
      die("usage", "post: unknown argument %s", o);
    }
  }
  if (videos && n > 1) die("usage", "a post holds ten images or one video, not both");
  if (!p.caption && n == 0) die("usage", "a post needs --caption or an --image/--video");
  for (size_t k = 0; k < n; k++) need_file(files[k]);
  char ids[TSR_POST_MEDIA_MAX][TSR_MEDIA_ID_SIZE];
  for (size_t k = 0; k < n; k++) {
    upload(c, files[k], ids[k]);
    media[k].id = ids[k];
  }
  p.n_media = n;
  tsr_reply r = {0};
  return done(tsr_post_create_sync(c, app, &p, &r), &r, "post", show_post);
}

/* post show|edit|delete ID [--caption T] [--app A] */
static int cmd_post(tsr_client *c, int argc, char **argv) {
  if (argc == 0 || !strncmp(argv[0], "--", 2)) return post_create(c, argc, argv);
  const char *sub = argv[0], *app = "social", *id = NULL, *caption = NULL;
  if (strcmp(sub, "show") && strcmp(sub, "edit") && strcmp(sub, "delete"))
    die("usage", "post [--caption T --image F ...] | post show|edit|delete ID");
  for (int i = 1; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--caption") && sub[0] == 'e')
      caption = optval(argc, argv, &i);
    else if (!id && argv[i][0] != '-')
      id = need_id(argv[i], "post");
    else
      die("usage", "post %s: unknown argument %s", sub, argv[i]);
  }
  if (!id) die("usage", "post %s ID", sub);
  tsr_reply r = {0};
  if (sub[0] == 's')
    return done(tsr_post_get_sync(c, app, id, &r), &r, "post", show_post);
  if (sub[0] == 'd')
    return done(tsr_post_delete_sync(c, app, id, &r), &r, "post delete", show_deleted);
  if (!caption) die("usage", "post edit ID --caption TEXT");
  return done(tsr_post_edit_sync(c, app, id, caption, &r), &r, "post edit", show_post);
}

/* ---- feeds --------------------------------------------------------------------- */

static void show_feed(const doc *d) {
  int arr = get(d, 0, "posts");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no posts in the answer");
  if (d->t[arr].size == 0) printf("no posts\n");
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e))
    print_post(d, e);
  char next[32];
  str_in(d, 0, "next", next, sizeof next);
  if (next[0]) printf("more: --before %s\n", next);
}

/* feed [--app A] [--limit N] [--before ID] [--profile WHO | --tag TAG] */
static int cmd_feed(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *before = NULL, *profile = NULL, *tag = NULL;
  unsigned limit = 0;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--limit"))
      limit = need_limit(optval(argc, argv, &i), 50);
    else if (!strcmp(argv[i], "--before"))
      before = need_id(optval(argc, argv, &i), "post");
    else if (!strcmp(argv[i], "--profile"))
      profile = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--tag"))
      tag = optval(argc, argv, &i);
    else
      die("usage", "feed: unknown argument %s", argv[i]);
  }
  if (profile && tag) die("usage", "feed takes --profile or --tag, not both");
  tsr_reply r = {0};
  int rc = profile ? tsr_feed_profile_sync(c, app, profile, before, limit, &r)
           : tag   ? tsr_feed_tag_sync(c, app, tag, before, limit, &r)
                   : tsr_feed_home_sync(c, app, before, limit, &r);
  if (rc == TSR_ELIMIT && !r.done) die("usage", "feed: --profile or --tag too long");
  return done(rc, &r, "feed", show_feed);
}

/* ---- likes and comments -------------------------------------------------------- */

static void show_like(const doc *d) {
  printf("%s, ", flag(d, 0, "liked") ? "liked" : "not liked");
  counted(num(d, 0, "likes"), "like", "likes");
  fputc('\n', stdout);
}

/* like POST_ID [--undo] [--app A] */
static int cmd_like(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *id = NULL;
  bool undo = false;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--undo"))
      undo = true;
    else if (!id && argv[i][0] != '-')
      id = need_id(argv[i], "post");
    else
      die("usage", "like: unknown argument %s", argv[i]);
  }
  if (!id) die("usage", "like POST_ID [--undo]");
  tsr_reply r = {0};
  return done(tsr_post_like_sync(c, app, id, !undo, &r), &r, "like", show_like);
}

static void show_likes(const doc *d) {
  int arr = get(d, 0, "likes");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no likes in the answer");
  if (d->t[arr].size == 0) printf("no likes\n");
  char last[64] = "";
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    char t[48];
    when(num(d, e, "at"), t, sizeof t);
    who(d, get(d, e, "profile"));
    printf("  %s\n", t);
    str_in(d, e, "cursor", last, sizeof last);
  }
  if (flag(d, 0, "more") && last[0]) printf("more: --before %s\n", last);
}

/* likes POST_ID [--before CURSOR] [--limit N] [--app A] */
static int cmd_likes(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *id = NULL, *before = NULL;
  unsigned limit = 0;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--before"))
      before = need_id(optval(argc, argv, &i), "cursor");
    else if (!strcmp(argv[i], "--limit"))
      limit = need_limit(optval(argc, argv, &i), 50);
    else if (!id && argv[i][0] != '-')
      id = need_id(argv[i], "post");
    else
      die("usage", "likes: unknown argument %s", argv[i]);
  }
  if (!id) die("usage", "likes POST_ID");
  tsr_reply r = {0};
  return done(tsr_post_likes_sync(c, app, id, before, limit, &r), &r, "likes",
              show_likes);
}

static void show_comment(const doc *d) {
  int cm = get(d, 0, "comment");
  if (cm < 0) die("bad_response", "no comment in the answer");
  char verdict[16];
  str_in(d, cm, "verdict", verdict, sizeof verdict);
  char parent[32], id[32], appeal[16];
  str_in(d, cm, "reply_to", parent, sizeof parent);
  str_in(d, cm, "id", id, sizeof id);
  str_in(d, cm, "appeal", appeal, sizeof appeal);
  print_comment(d, cm, "", parent);
  if (verdict[0] && strcmp(verdict, "ham") && !appeal[0])
    printf("(%s: only you and the post's author see it; `tessera comment appeal %s`"
           " asks for a review)\n",
           verdict, id);
}

/* comment POST_ID TEXT [--reply-to ID] | comment delete|appeal ID [--note N] */
static int cmd_comment(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *pos[2] = {NULL, NULL}, *reply_to = NULL, *note = NULL;
  int npos = 0;
  bool sub = argc > 0 && (!strcmp(argv[0], "delete") || !strcmp(argv[0], "appeal"));
  for (int i = sub; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--reply-to") && !sub)
      reply_to = need_id(optval(argc, argv, &i), "comment");
    else if (!strcmp(argv[i], "--note") && sub)
      note = optval(argc, argv, &i);
    else if (npos < 2 - sub && (argv[i][0] != '-' || npos == 1))
      pos[npos++] = argv[i];
    else
      die("usage", "comment: unknown argument %s", argv[i]);
  }
  tsr_reply r = {0};
  if (sub) {
    if (npos != 1) die("usage", "comment %s COMMENT_ID", argv[0]);
    const char *id = need_id(pos[0], "comment");
    if (argv[0][0] == 'd')
      return done(tsr_comment_delete_sync(c, app, id, &r), &r, "comment delete",
                  show_deleted);
    return done(tsr_comment_appeal_sync(c, app, id, note, &r), &r, "comment appeal",
                show_comment);
  }
  if (npos != 2 || !pos[1][0])
    die("usage", "comment POST_ID TEXT [--reply-to COMMENT_ID]");
  return done(
      tsr_comment_create_sync(c, app, need_id(pos[0], "post"), pos[1], reply_to, &r), &r,
      "comment", show_comment);
}

/* Top-level comments in order, each followed by its replies; replies whose
 * thread is not on this page last. */
static void show_comments(const doc *d) {
  int arr = get(d, 0, "comments");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no comments in the answer");
  if (d->t[arr].size == 0) printf("no comments\n");
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    char id[32], parent[32];
    str_in(d, e, "reply_to", parent, sizeof parent);
    if (parent[0]) continue;
    print_comment(d, e, "", "");
    str_in(d, e, "id", id, sizeof id);
    for (int f = json_first_child(d->t, arr); f >= 0;
         f = json_next_sibling(d->t, arr, f)) {
      str_in(d, f, "reply_to", parent, sizeof parent);
      if (!strcmp(parent, id)) print_comment(d, f, "  > ", "");
    }
  }
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    char parent[32];
    str_in(d, e, "reply_to", parent, sizeof parent);
    if (!parent[0]) continue;
    bool here = false;
    for (int f = json_first_child(d->t, arr); f >= 0 && !here;
         f = json_next_sibling(d->t, arr, f)) {
      char id[32], pp[32];
      str_in(d, f, "id", id, sizeof id);
      str_in(d, f, "reply_to", pp, sizeof pp);
      here = !pp[0] && !strcmp(id, parent);
    }
    if (here) continue;
    char indent[48];
    snprintf(indent, sizeof indent, "(re %s) ", parent);
    print_comment(d, e, indent, "");
  }
  char next[32];
  str_in(d, 0, "next", next, sizeof next);
  if (next[0]) printf("more: --after %s\n", next);
}

/* comments POST_ID [--hidden] [--after ID] [--limit N] [--app A] */
static int cmd_comments(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *id = NULL, *after = NULL;
  unsigned limit = 0;
  bool hidden = false;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--hidden"))
      hidden = true;
    else if (!strcmp(argv[i], "--after"))
      after = need_id(optval(argc, argv, &i), "comment");
    else if (!strcmp(argv[i], "--limit"))
      limit = need_limit(optval(argc, argv, &i), 100);
    else if (!id && argv[i][0] != '-')
      id = need_id(argv[i], "post");
    else
      die("usage", "comments: unknown argument %s", argv[i]);
  }
  if (!id) die("usage", "comments POST_ID [--hidden]");
  tsr_reply r = {0};
  return done(tsr_comments_list_sync(c, app, id, after, limit, hidden, &r), &r,
              "comments", show_comments);
}

/* ---- stories ------------------------------------------------------------------- */

static void print_story(const doc *d, int s, bool with_author) {
  char id[32], kind[16], t[48], exp[48];
  int m = get(d, s, "media");
  str_in(d, s, "id", id, sizeof id);
  str_in(d, m, "kind", kind, sizeof kind);
  when(num(d, s, "created_at"), t, sizeof t);
  when(num(d, s, "expires_at"), exp, sizeof exp);
  printf("%s%s  ", with_author ? "story " : "  ", id);
  if (with_author) {
    who(d, get(d, s, "author"));
    fputs("  ", stdout);
  }
  printf("%s  %s  until %s", kind[0] ? kind : "?", t, exp);
  if (get(d, s, "views") >= 0) {
    fputs("  ", stdout);
    counted(num(d, s, "views"), "view", "views");
  } else if (flag(d, s, "seen")) {
    fputs("  seen", stdout);
  }
  char *cap = str(d, s, "caption");
  if (cap[0]) {
    fputs("  ", stdout);
    put_text(cap, "    ");
  }
  free(cap);
  fputc('\n', stdout);
}

static void show_story(const doc *d) {
  int s = get(d, 0, "story");
  if (s < 0) die("bad_response", "no story in the answer");
  print_story(d, s, true);
}

static void show_tray(const doc *d) {
  int arr = get(d, 0, "authors");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no authors in the answer");
  if (d->t[arr].size == 0) printf("no stories\n");
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    who(d, get(d, e, "profile"));
    fputc('\n', stdout);
    int ss = get(d, e, "stories");
    if (ss < 0 || d->t[ss].type != JSON_ARRAY) continue;
    for (int s = json_first_child(d->t, ss); s >= 0; s = json_next_sibling(d->t, ss, s))
      print_story(d, s, false);
  }
}

static void show_viewed(const doc *d) {
  (void)d;
  printf("seen\n");
}

static void show_viewers(const doc *d) {
  int arr = get(d, 0, "viewers");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no viewers in the answer");
  if (d->t[arr].size == 0) printf("no viewers yet\n");
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    char t[48];
    when(num(d, e, "at"), t, sizeof t);
    who(d, get(d, e, "profile"));
    printf("  %s\n", t);
  }
}

/* story --image F | --video F [--alt T] [--caption T] [--visibility V] [--to APPS]
 * story list | story view|viewers|delete ID */
static int cmd_story(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *apps[2] = {NULL, NULL}, *file = NULL, *id = NULL;
  const char *sub = argc > 0 && argv[0][0] != '-' ? argv[0] : NULL;
  if (sub && strcmp(sub, "list") && strcmp(sub, "view") && strcmp(sub, "viewers") &&
      strcmp(sub, "delete"))
    die("usage", "story --image FILE ... | story list | story view|viewers|delete ID");
  tsr_story_params p = {.apps = apps};
  for (int i = sub != NULL; i < argc; i++) {
    const char *o = argv[i];
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!sub && (!strcmp(o, "--image") || !strcmp(o, "--video"))) {
      if (file) die("usage", "a story holds one image or video");
      file = optval(argc, argv, &i);
    } else if (!sub && !strcmp(o, "--alt")) {
      p.alt = optval(argc, argv, &i);
    } else if (!sub && !strcmp(o, "--caption")) {
      p.caption = optval(argc, argv, &i);
    } else if (!sub && !strcmp(o, "--visibility")) {
      p.visibility = need_visibility(optval(argc, argv, &i));
    } else if (!sub && !strcmp(o, "--to")) {
      p.n_apps = need_apps(optval(argc, argv, &i), apps);
    } else if (sub && strcmp(sub, "list") && !id && o[0] != '-') {
      id = need_id(o, "story");
    } else {
      die("usage", "story: unknown argument %s", o);
    }
  }
  tsr_reply r = {0};
  if (!sub) {
    if (!file) die("usage", "story --image FILE (or --video FILE)");
    need_file(file);
    char mid[TSR_MEDIA_ID_SIZE];
    upload(c, file, mid);
    p.media = mid;
    return done(tsr_story_post_sync(c, app, &p, &r), &r, "story", show_story);
  }
  if (!strcmp(sub, "list"))
    return done(tsr_stories_tray_sync(c, app, &r), &r, "story list", show_tray);
  if (!id) die("usage", "story %s STORY_ID", sub);
  if (!strcmp(sub, "view"))
    return done(tsr_story_view_sync(c, app, id, &r), &r, "story view", show_viewed);
  if (!strcmp(sub, "viewers"))
    return done(tsr_story_viewers_sync(c, app, id, &r), &r, "story viewers",
                show_viewers);
  return done(tsr_story_delete_sync(c, app, id, &r), &r, "story delete", show_deleted);
}

/* ---- follows, close friends ------------------------------------------------------- */

/* The handle or username show_follow names (set by cmd_follow). */
static const char *follow_target;

static void show_follow(const doc *d) {
  char state[32];
  str_in(d, 0, "state", state, sizeof state);
  const char *key = follow_target[0] == '@' ? follow_target + 1 : follow_target;
  if (!strcmp(state, "following"))
    printf("following @%s\n", key);
  else if (!strcmp(state, "requested"))
    printf("requested to follow @%s (a private account: they approve)\n", key);
  else if (!strcmp(state, "none"))
    printf("not following @%s\n", key);
  else
    printf("@%s: %s\n", key, state[0] ? state : "ok");
}

/* follow HANDLE [--undo] [--app social|messenger]; unfollow HANDLE */
static int cmd_follow(tsr_client *c, bool undo, int argc, char **argv) {
  const char *app = "social", *key = NULL;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--undo"))
      undo = true;
    else if (!key && argv[i][0] != '-')
      key = argv[i];
    else
      die("usage", "follow: unknown argument %s", argv[i]);
  }
  if (!key) die("usage", "follow HANDLE [--undo] [--app social|messenger]");
  follow_target = key;
  tsr_reply r = {0};
  int rc = tsr_follow_sync(c, app, key, !undo, &r);
  if (rc == TSR_ELIMIT && !r.done) die("usage", "follow: %s is too long", key);
  return done(rc, &r, undo ? "unfollow" : "follow", show_follow);
}

static void show_close_friends(const doc *d) {
  int arr = get(d, 0, "close_friends");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no close_friends in the answer");
  if (d->t[arr].size == 0) printf("no close friends\n");
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    who(d, e);
    fputc('\n', stdout);
  }
}

static void show_ok(const doc *d) {
  (void)d;
  printf("ok\n");
}

/* close-friends list | close-friends add|remove HANDLE */
static int cmd_close_friends(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *sub = argc ? argv[0] : "list", *key = NULL;
  for (int i = argc ? 1 : 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!key && argv[i][0] != '-' && strcmp(sub, "list"))
      key = argv[i];
    else
      die("usage", "close-friends: unknown argument %s", argv[i]);
  }
  if (strcmp(app, "social")) die("usage", "close friends are a social list");
  tsr_reply r = {0};
  if (!strcmp(sub, "list"))
    return done(tsr_close_friends_list_sync(c, &r), &r, "close-friends",
                show_close_friends);
  if ((strcmp(sub, "add") && strcmp(sub, "remove")) || !key)
    die("usage", "close-friends list | close-friends add|remove HANDLE");
  int rc = tsr_close_friend_set_sync(c, key, sub[0] == 'a', &r);
  if (rc == TSR_ELIMIT && !r.done) die("usage", "close-friends: %s is too long", key);
  return done(rc, &r, "close-friends", show_ok);
}

/* ---- notifications, reports ------------------------------------------------------- */

/* The list; the footer says how many are unread, or with marked (--read)
 * up to which one they were marked read. */
static void list_notifications(const doc *d, const char *marked) {
  int arr = get(d, 0, "notifications");
  if (arr < 0 || d->t[arr].type != JSON_ARRAY)
    die("bad_response", "no notifications in the answer");
  if (d->t[arr].size == 0) printf("no notifications\n");
  for (int e = json_first_child(d->t, arr); e >= 0; e = json_next_sibling(d->t, arr, e)) {
    char id[32], kind[32], app[16], post[32], comment[32], t[48];
    str_in(d, e, "id", id, sizeof id);
    str_in(d, e, "kind", kind, sizeof kind);
    str_in(d, e, "app", app, sizeof app);
    str_in(d, e, "post", post, sizeof post);
    str_in(d, e, "comment", comment, sizeof comment);
    when(num(d, e, "at"), t, sizeof t);
    printf("%s  %s  %s  %s  ", id, t, app, kind);
    who(d, get(d, e, "actor"));
    char *text = str(d, e, "text");
    if (text[0]) {
      fputs(": ", stdout);
      put_text(text, "    ");
    }
    free(text);
    if (post[0]) printf("  (post %s)", post);
    if (comment[0]) printf("  (comment %s)", comment);
    if (!flag(d, e, "read")) fputs("  [new]", stdout);
    fputc('\n', stdout);
  }
  int64_t unread = num(d, 0, "unread");
  if (!marked)
    printf("%lld unread\n", (long long)unread);
  else if (marked[0])
    printf("marked read up to %s (%lld were unread)\n", marked, (long long)unread);
  char next[32];
  str_in(d, 0, "next", next, sizeof next);
  if (next[0]) printf("more: --before %s\n", next);
}

static void show_notifications(const doc *d) { list_notifications(d, NULL); }

/* notifications [--read] [--app A] [--before ID] [--limit N] */
static int cmd_notifications(tsr_client *c, int argc, char **argv) {
  const char *app = NULL, *before = NULL;
  unsigned limit = 0;
  bool read = false;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--read"))
      read = true;
    else if (!strcmp(argv[i], "--before"))
      before = need_id(optval(argc, argv, &i), "notification");
    else if (!strcmp(argv[i], "--limit"))
      limit = need_limit(optval(argc, argv, &i), 100);
    else
      die("usage", "notifications: unknown argument %s", argv[i]);
  }
  tsr_reply r = {0};
  int rc = tsr_notifications_list_sync(c, app, before, limit, &r);
  if (rc) return done(rc, &r, "notifications", show_notifications);
  if (!read) return done(rc, &r, "notifications", show_notifications);
  /* --read: everything up to the newest listed becomes read; the list is
   * printed as it was before (what was new is still marked so). */
  char newest[32] = "";
  doc d = parse(&r);
  int arr = get(&d, 0, "notifications");
  int first = arr >= 0 ? json_first_child(d.t, arr) : -1;
  if (first >= 0) str_in(&d, first, "id", newest, sizeof newest);
  if (newest[0]) {
    tsr_reply m = {0};
    rc = tsr_notifications_read_sync(c, newest, &m);
    if (rc) die_call(rc, &m, "notifications read");
    tsr_reply_clear(&m);
  }
  if (json_out)
    print_body(&r);
  else
    list_notifications(&d, newest);
  free(d.t);
  tsr_reply_clear(&r);
  return 0;
}

static void show_report(const doc *d) {
  int rp = get(d, 0, "report");
  char id[32], state[32];
  str_in(d, rp, "id", id, sizeof id);
  str_in(d, rp, "state", state, sizeof state);
  printf("reported: report %s (%s)\n", id, state);
}

/* report (--post ID | --comment ID) --reason R [--note N] [--app A] */
static int cmd_report(tsr_client *c, int argc, char **argv) {
  const char *app = "social", *post = NULL, *comment = NULL, *reason = NULL, *note = NULL;
  for (int i = 0; i < argc; i++) {
    if (common_opt(argc, argv, &i, &app)) continue;
    if (!strcmp(argv[i], "--post"))
      post = need_id(optval(argc, argv, &i), "post");
    else if (!strcmp(argv[i], "--comment"))
      comment = need_id(optval(argc, argv, &i), "comment");
    else if (!strcmp(argv[i], "--reason"))
      reason = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--note"))
      note = optval(argc, argv, &i);
    else
      die("usage", "report: unknown argument %s", argv[i]);
  }
  if (!post == !comment || !reason)
    die("usage", "report (--post ID | --comment ID) --reason R [--note TEXT]");
  tsr_reply r = {0};
  int rc = tsr_report_sync(c, app, post, comment, reason, note, &r);
  if (rc == TSR_EINVAL && !r.done)
    die("usage", "--reason takes spam, harassment, nudity, violence, hate or other");
  return done(rc, &r, "report", show_report);
}

int public_command(tsr_client *c, const char *cmd, int argc, char **argv) {
  if (!strcmp(cmd, "post")) return cmd_post(c, argc, argv);
  if (!strcmp(cmd, "story")) return cmd_story(c, argc, argv);
  if (!strcmp(cmd, "feed")) return cmd_feed(c, argc, argv);
  if (!strcmp(cmd, "like")) return cmd_like(c, argc, argv);
  if (!strcmp(cmd, "likes")) return cmd_likes(c, argc, argv);
  if (!strcmp(cmd, "comment")) return cmd_comment(c, argc, argv);
  if (!strcmp(cmd, "comments")) return cmd_comments(c, argc, argv);
  if (!strcmp(cmd, "follow")) return cmd_follow(c, false, argc, argv);
  if (!strcmp(cmd, "unfollow")) return cmd_follow(c, true, argc, argv);
  if (!strcmp(cmd, "close-friends")) return cmd_close_friends(c, argc, argv);
  if (!strcmp(cmd, "notifications")) return cmd_notifications(c, argc, argv);
  if (!strcmp(cmd, "report")) return cmd_report(c, argc, argv);
  return -1;
}
