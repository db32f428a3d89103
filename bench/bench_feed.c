/* Home-feed read latency and post fan-out on a large public-life dataset.
 *
 * Dataset (built once, then cached in a directory named after its
 * parameters; reused while they match, rebuilt otherwise). tesserad is
 * started once on an empty data directory so that it creates its schema,
 * stopped, and the store is bulk-loaded with SQLite directly (one
 * transaction, prepared statements, synchronous=OFF and no journal for the
 * load only; WAL again afterwards), with the rows the server itself would
 * have written:
 *  - A accounts (default 100,000), each with a social profile and one
 *    device whose bearer token the bench derives from the seed (the store
 *    keeps SHA-256 of it, as accounts.c does);
 *  - a follow graph: every account follows 20-200 others (log-uniform);
 *    45% of those follows go to a tier of 0.3% "popular" accounts (a flat
 *    Zipf, exponent 0.2, inside the tier), the rest to all accounts by a
 *    Zipf-Mandelbrot popularity (exponent 1, offset A/100). About 300
 *    tier accounts end up with more than 10,000 followers. One more
 *    account (the fan-out author) has exactly T followers (T = the
 *    server's fanout_threshold, 10,000), chosen uniformly;
 *  - N posts (default 1,000,000) over the last 30 days, ids as the store
 *    makes them ((ms << 22) + n, increasing with time), authors drawn by a
 *    log-normal activity (tier accounts 3x), captions of log-normal length
 *    (median ~90 bytes of text; 40% end with 1-8 hashtags of a Zipf
 *    vocabulary of 5,000, 6% mention one or two followees), 3%
 *    followers-only, most with one to five images (media rows, no files),
 *    and the rows the server derives from a caption: post_tags,
 *    post_mentions, and a mention notification where the person may see
 *    the post;
 *  - fanout_read: the authors with more than T followers, marked since
 *    their first post (the follows predate the posts, so the server would
 *    have marked them at that post and never fanned them out);
 *  - timelines: each post of every other author in each follower's
 *    timeline, inserted in post order, sorted by key within chunks of 1M
 *    rows (each chunk touches the whole index, as the server's inserts do;
 *    the index ends ~87% full where purely random inserts leave ~70%).
 *
 * Reads: tesserad (default configuration, W workers) on the dataset; the
 * database file is read once into the page cache, then a 3 s unmeasured
 * warm-up. P load processes, each with C keep-alive connections (each
 * connection its own source address 127.1.k.c, so per-address limits stay
 * at their defaults), issue GET /v1/apps/social/feed?limit=20 as readers
 * drawn uniformly from all accounts (each request its reader's token),
 * paced at R requests/s in all (latency from the request's scheduled time,
 * so a backlog counts) or, with R = 0, as fast as answers come (one request
 * in flight per connection). A run counts the answers that arrive in its
 * window (after a 1 s warm-up) and then waits for those still due. Then
 * the second page: the same with before=<next of the reader's first
 * page>. Every answer must be 200.
 *
 * Fan-out: the fan-out author (exactly T followers: fan-out on write, the
 * server fans out above T) publishes F posts one after another (250 ms
 * apart); POST -> 201 latency (the server writes the T timeline rows in the
 * post's store job, before answering), and after each 201 one follower's
 * feed must show the post first, and the bench waits until the server's
 * timeline write buffer is empty (its rows moved into timelines); at the
 * end the author deletes the posts one by one (DELETE -> 200 latency, then
 * the wait until the purge list is empty: the rows deleted). The same for the
 * most-followed fan-out-on read author (POST latency, and the first feed read of one of
 * its followers), and for a median author as a baseline. The bench deletes its posts from
 * the cached dataset afterwards (and before starting, after an interrupted run).
 *
 * Usage: bench_feed [-a accounts] [-n posts] [-T threshold] [-w workers]
 *                   [-p procs] [-c conns per proc] [-R rate[,rate...]]
 *                   [-t seconds] [-r runs] [-f posts] [--only read|fanout]
 *                   [--cache dir] [--rebuild] [--server path] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_accounts.h"
#include "bench_util.h"

#define DATASET_VERSION 2
#define DAYS 30
#define FOLLOW_MIN 20
#define FOLLOW_MAX 200
#define CELEB_SHARE 0.45   /* share of follows that go to the popular tier */
#define HASHTAG_SHARE 0.4  /* posts with 1-8 hashtags */
#define MENTION_SHARE 0.06 /* posts mentioning one or two followees */
#define ID_SHIFT 22        /* post ids: ms << 22 (server/public.c) */
#define APP_SOCIAL_ID 1    /* app_id APP_SOCIAL (server/profiles.h) */
#define TL_CHUNK ((size_t)1 << 20)
#define DIR_MAX 3072 /* the dataset's directory (file names are added to it) */
#define MAX_PROCS 64
#define DRAIN_S 60 /* longest wait for the answers of a run's last requests */
#define MAX_RATES 8
#define CONN_BUF (512 * 1024)
/* Latency histogram: 1 µs buckets below 10 ms, 100 µs to 1 s, 10 ms to 60 s. */
#define H1 10000
#define H2 (H1 + 9900)
#define NBUCKETS (H2 + 5900 + 1)

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- interruption: the server and the load processes go with us ---------------- */

static volatile pid_t g_server;
static volatile pid_t g_kids[MAX_PROCS];

static void on_signal(int sig) {
  for (int k = 0; k < MAX_PROCS; k++)
    if (g_kids[k] > 0) kill(g_kids[k], SIGKILL);
  if (g_server > 0) kill(g_server, SIGTERM); /* it stops its own workers */
  _exit(128 + sig);
}

/* ---- deterministic random numbers (splitmix64) ----------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static double rnd01(void) { return (double)(rnd() >> 11) * 0x1.0p-53; }

static uint32_t rnd_below(uint32_t n) { return (uint32_t)(rnd01() * n); }

static double rnd_normal(void) {
  double u = rnd01(), v = rnd01();
  return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(2.0 * M_PI * v);
}

static void rnd_bytes(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = rnd();
    memcpy(p + i, &x, n - i < 8 ? n - i : 8);
  }
}

/* Index i with cdf[i-1] <= u*total < cdf[i]. */
static int pick_cdf(const double *cdf, int n) {
  double u = rnd01() * cdf[n - 1];
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (cdf[mid] > u)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* ---- the dataset's parameters and what was built --------------------------------- */

typedef struct {
  int accounts, posts, threshold;
  uint64_t seed;
} ds_params;

/* Written to <dir>/bench_feed.params after a complete build; a directory
 * without it (or with other parameters) is rebuilt. */
typedef struct {
  int64_t built_ms, max_post_id, build_s;
  int fanout_author, read_author, median_author;
  int64_t follows, posts_followers, media, marked, timelines, tags, mentions;
  /* per reader: fan-out-on-read followees (mean x100, p50, p90, max) and
   * timeline rows (p50, p90) */
  int64_t big_mean100, big_p50, big_p90, big_max, tl_p50, tl_p90;
  int marked_min, marked_max;
} ds_info;

static void params_line(const ds_params *p, char *out, size_t cap) {
  snprintf(out, cap,
           "bench_feed dataset v%d accounts=%d posts=%d threshold=%d seed=%" PRIu64,
           DATASET_VERSION, p->accounts, p->posts, p->threshold, p->seed);
}

static int info_read(const char *dir, const ds_params *p, ds_info *in) {
  char path[PATH_MAX], line[256], want[256];
  snprintf(path, sizeof path, "%s/bench_feed.params", dir);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  params_line(p, want, sizeof want);
  int rc = -1;
  if (fgets(line, sizeof line, f) && strncmp(line, want, strlen(want)) == 0 &&
      line[strlen(want)] == '\n') {
    memset(in, 0, sizeof *in);
    int got = 0;
    while (fgets(line, sizeof line, f)) {
      long long v;
      char key[64];
      if (sscanf(line, "%63[a-z0-9_]=%lld", key, &v) != 2) continue;
      got++;
#define K(name, field)                                                                   \
  if (!strcmp(key, name)) in->field = v;
      K("built_ms", built_ms)
      K("max_post_id", max_post_id)
      K("build_s", build_s)
      K("fanout_author", fanout_author)
      K("read_author", read_author)
      K("median_author", median_author)
      K("follows", follows)
      K("posts_followers", posts_followers)
      K("media", media)
      K("marked", marked)
      K("timelines", timelines)
      K("marked_min", marked_min)
      K("marked_max", marked_max)
      K("tags", tags)
      K("mentions", mentions)
      K("big_mean100", big_mean100)
      K("big_p50", big_p50)
      K("big_p90", big_p90)
      K("big_max", big_max)
      K("tl_p50", tl_p50)
      K("tl_p90", tl_p90)
#undef K
    }
    if (got >= 21 && in->max_post_id > 0) rc = 0;
  }
  fclose(f);
  return rc;
}

static int info_write(const char *dir, const ds_params *p, const ds_info *in) {
  char path[PATH_MAX], line[256];
  snprintf(path, sizeof path, "%s/bench_feed.params", dir);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  params_line(p, line, sizeof line);
  fprintf(f,
          "%s\nbuilt_ms=%" PRId64 "\nmax_post_id=%" PRId64 "\nbuild_s=%" PRId64
          "\nfanout_author=%d\nread_author=%d\nmedian_author=%d\nfollows=%" PRId64
          "\nposts_followers=%" PRId64 "\nmedia=%" PRId64 "\nmarked=%" PRId64
          "\ntimelines=%" PRId64 "\nmarked_min=%d\nmarked_max=%d\ntags=%" PRId64
          "\nmentions=%" PRId64 "\nbig_mean100=%" PRId64 "\nbig_p50=%" PRId64
          "\nbig_p90=%" PRId64 "\nbig_max=%" PRId64 "\ntl_p50=%" PRId64
          "\ntl_p90=%" PRId64 "\n",
          line, in->built_ms, in->max_post_id, in->build_s, in->fanout_author,
          in->read_author, in->median_author, in->follows, in->posts_followers, in->media,
          in->marked, in->timelines, in->marked_min, in->marked_max, in->tags,
          in->mentions, in->big_mean100, in->big_p50, in->big_p90, in->big_max,
          in->tl_p50, in->tl_p90);
  return fclose(f) == 0 ? 0 : -1;
}

/* Account i's id and bearer token follow from the seed: the bench needs no
 * state beyond the parameters to act as any account. */
static void account_id(const ds_params *p, int i, uint8_t out[16]) {
  uint8_t key[32] = {0}, msg[12] = {'i', 'd'};
  memcpy(key, &p->seed, sizeof p->seed);
  memcpy(msg + 2, &i, sizeof i);
  crypto_generichash(out, 16, msg, sizeof msg, key, sizeof key);
}

static void account_token(const ds_params *p, int i, char out[BENCH_TOKEN_LEN + 1],
                          uint8_t hash[32]) {
  uint8_t key[32] = {0}, msg[12] = {'t', 'o', 'k'}, tok[32];
  memcpy(key, &p->seed, sizeof p->seed);
  memcpy(msg + 3, &i, sizeof i);
  crypto_generichash(tok, sizeof tok, msg, sizeof msg, key, sizeof key);
  bench_b64(tok, sizeof tok, out, BENCH_TOKEN_LEN + 1);
  if (hash) crypto_hash_sha256(hash, tok, sizeof tok);
}

/* ---- the generated graph and posts ------------------------------------------------- */

typedef struct {
  int n, tier;
  uint8_t (*id)[16];
  int64_t *fol_off; /* followees of i: fol[fol_off[i] .. fol_off[i + 1]) */
  int *fol;
  int64_t *fwr_off; /* followers of i */
  int *fwr;
  int nposts;
  int *post_author;
  int64_t *post_ms, *post_id;
  uint8_t *post_vis; /* 0 public, 1 followers */
  int *nposts_of;
  bool *marked;
  int fanout_author, read_author, median_author;
} graph;

static void graph_free(graph *g) {
  free(g->id);
  free(g->fol_off);
  free(g->fol);
  free(g->fwr_off);
  free(g->fwr);
  free(g->post_author);
  free(g->post_ms);
  free(g->post_id);
  free(g->post_vis);
  free(g->nposts_of);
  free(g->marked);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return x < y ? -1 : x > y;
}

static int make_graph(const ds_params *p, int64_t window_end_ms, graph *g) {
  int n = p->accounts, T = p->threshold, rc = -1;
  int *deg = NULL, *perm = NULL;
  int64_t *fill = NULL;
  double *cdf_tier = NULL, *cdf_all = NULL;
  bool *fa_follower = NULL;
  memset(g, 0, sizeof *g);
  if (n < 1000 || T < 1 || T >= n - 1) return -1; /* main checks these too */
  g->n = n;
  g->tier = n * 3 / 1000 > 1 ? n * 3 / 1000 : 1;
  g->fanout_author = n - 1;
  rng_state = p->seed * 0x2545f4914f6cdd1du + 1;
  g->id = malloc(sizeof *g->id * (size_t)n);
  g->fol_off = calloc((size_t)n + 1, sizeof *g->fol_off);
  g->fwr_off = calloc((size_t)n + 1, sizeof *g->fwr_off);
  deg = calloc((size_t)n, sizeof *deg);
  cdf_tier = malloc(sizeof *cdf_tier * (size_t)g->tier);
  cdf_all = malloc(sizeof *cdf_all * (size_t)n);
  fa_follower = calloc((size_t)n, sizeof *fa_follower);
  perm = malloc(sizeof *perm * (size_t)n);
  if (!g->id || !g->fol_off || !g->fwr_off || !deg || !cdf_tier || !cdf_all ||
      !fa_follower || !perm)
    goto out;
  for (int i = 0; i < n; i++) account_id(p, i, g->id[i]);
  double acc = 0;
  for (int r = 0; r < g->tier; r++) cdf_tier[r] = acc += pow(r + 1 + 10.0, -0.2);
  double q = n / 100.0;
  acc = 0;
  for (int r = 0; r < n; r++)
    cdf_all[r] = acc += r == g->fanout_author ? 0 : 1.0 / (r + 1 + q);
  /* The fan-out author's followers: T accounts, uniformly. */
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int k = 0; k < T; k++) {
    int j = k + (int)rnd_below((uint32_t)(n - 1 - k));
    if (j >= n - 1) j = n - 2; /* rnd01() < 1, so never; for the analyser */
    int t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
    fa_follower[perm[k]] = true;
  }
  int fmax = FOLLOW_MAX < n / 2 ? FOLLOW_MAX : n / 2,
      fmin = FOLLOW_MIN < fmax ? FOLLOW_MIN : fmax;
  for (int i = 0; i < n; i++) {
    deg[i] = (int)exp(log(fmin) + rnd01() * (log(fmax + 1.0) - log(fmin)));
    if (deg[i] > fmax) deg[i] = fmax;
    g->fol_off[i + 1] = g->fol_off[i] + deg[i] + fa_follower[i];
  }
  g->fol = malloc(sizeof *g->fol * ((size_t)g->fol_off[n] + 1));
  if (!g->fol) goto out;
  for (int i = 0; i < n; i++) {
    int *l = g->fol + g->fol_off[i], k = 0;
    if (fa_follower[i]) l[k++] = g->fanout_author;
    for (int want = k + deg[i]; k < want;) {
      int f = -1;
      for (int tries = 0; tries < 50 && f < 0; tries++) {
        int c = rnd01() < CELEB_SHARE && tries < 25 ? pick_cdf(cdf_tier, g->tier)
                                                    : pick_cdf(cdf_all, n);
        bool dup = c == i;
        for (int j = 0; j < k && !dup; j++) dup = l[j] == c;
        if (!dup) f = c;
      }
      if (f < 0) goto out;
      l[k++] = f;
    }
  }
  /* Followers: the transposed lists. */
  for (int64_t e = 0; e < g->fol_off[n]; e++) g->fwr_off[g->fol[e] + 1]++;
  for (int i = 0; i < n; i++) g->fwr_off[i + 1] += g->fwr_off[i];
  g->fwr = malloc(sizeof *g->fwr * ((size_t)g->fwr_off[n] + 1));
  fill = calloc((size_t)n, sizeof *fill);
  if (!g->fwr || !fill) goto out;
  for (int i = 0; i < n; i++)
    for (int64_t e = g->fol_off[i]; e < g->fol_off[i + 1]; e++) {
      int f = g->fol[e];
      g->fwr[g->fwr_off[f] + fill[f]++] = i;
    }
  /* Posts: authors by a log-normal activity, times uniform over the window. */
  g->nposts = p->posts;
  size_t np = (size_t)p->posts;
  g->post_author = malloc(sizeof *g->post_author * np);
  g->post_ms = malloc(sizeof *g->post_ms * np);
  g->post_id = malloc(sizeof *g->post_id * np);
  g->post_vis = malloc(np);
  g->nposts_of = calloc((size_t)n, sizeof *g->nposts_of);
  g->marked = calloc((size_t)n, sizeof *g->marked);
  if (!g->post_author || !g->post_ms || !g->post_id || !g->post_vis || !g->nposts_of ||
      !g->marked)
    goto out;
  acc = 0;
  for (int i = 0; i < n; i++)
    cdf_all[i] = acc += exp(0.9 * rnd_normal()) * (i < g->tier ? 3.0 : 1.0);
  int64_t span = (int64_t)DAYS * 86400000;
  for (size_t k = 0; k < np; k++)
    g->post_ms[k] = window_end_ms - span + (int64_t)(rnd01() * (double)span);
  qsort(g->post_ms, np, sizeof *g->post_ms, cmp_i64);
  int64_t last = 0;
  for (size_t k = 0; k < np; k++) {
    int a = pick_cdf(cdf_all, n);
    g->post_author[k] = a;
    g->nposts_of[a]++;
    int64_t id = g->post_ms[k] << ID_SHIFT;
    if (id <= last) id = last + 1;
    g->post_id[k] = last = id;
    g->post_vis[k] = rnd01() < 0.03;
  }
  for (int i = 0; i < n; i++)
    g->marked[i] = g->fwr_off[i + 1] - g->fwr_off[i] > T && g->nposts_of[i] > 0;
  /* The most followed marked author (fan-out on read), and an author with
   * the median follower count among those who posted (a baseline). */
  g->read_author = -1;
  int64_t best = -1;
  for (int i = 0; i < n; i++)
    if (g->marked[i] && g->fwr_off[i + 1] - g->fwr_off[i] > best) {
      best = g->fwr_off[i + 1] - g->fwr_off[i];
      g->read_author = i;
    }
  int m = 0;
  for (int i = 0; i < n; i++)
    if (g->nposts_of[i] > 0 && i != g->fanout_author)
      perm[m++] = (int)(g->fwr_off[i + 1] - g->fwr_off[i]);
  qsort(perm, (size_t)m, sizeof *perm, cmp_int);
  int med = m ? perm[m / 2] : 0;
  g->median_author = 0;
  for (int i = 0; i < n; i++)
    if (g->nposts_of[i] > 0 && i != g->fanout_author && !g->marked[i] &&
        g->fwr_off[i + 1] - g->fwr_off[i] == med) {
      g->median_author = i;
      break;
    }
  rc = 0;
out:
  free(deg);
  free(fill);
  free(cdf_tier);
  free(cdf_all);
  free(fa_follower);
  free(perm);
  return rc;
}

static const char *const words[] = {
    "the",       "morning",  "light",    "over",    "lake",   "with",     "friends",
    "coffee",    "and",      "a",        "long",    "walk",   "city",     "weekend",
    "sunset",    "finally",  "back",     "home",    "after",  "trip",     "to",
    "mountains", "best",     "pasta",    "ever",    "new",    "shoes",    "who",
    "else",      "loves",    "rainy",    "days",    "in",     "café",     "reading",
    "book",      "my",       "dog",      "thinks",  "he",     "is",       "cat",
    "summer",    "vibes",    "beach",    "day",     "today",  "was",      "amazing",
    "thank",     "you",      "all",      "for",     "coming", "birthday", "party",
    "so",        "grateful", "little",   "things",  "garden", "flowers",  "bloom",
    "first",     "time",     "trying",   "this",    "recipe", "turned",   "out",
    "great",     "can't",    "wait",     "next",    "week",   "concert",  "tonight",
    "view",      "from",     "top",      "hike",    "worth",  "it",       "sunday",
    "brunch",    "old",      "town",     "streets", "market", "fresh",    "bread",
    "late",      "night",    "work",     "project", "done",   "team",     "proud",
    "of",        "us",       "winter",   "snow",    "cozy",   "evening",  "music",
    "running",   "5k",       "personal", "record",  "train",  "station",  "road"};
#define NWORDS (sizeof words / sizeof words[0])
#define NTAGS 5000
#define TAGS_PER_POST_MAX 8
#define TAG_BYTES 40

/* Hashtag t of NTAGS: one word or two run together (ASCII words only, as
 * the server takes a tag to its first non-tag character). */
static void tag_name(int t, char out[TAG_BYTES]) {
  static int ascii[NWORDS], na;
  if (!na)
    for (size_t i = 0; i < NWORDS; i++) {
      bool ok = true;
      for (const char *c = words[i]; *c; c++)
        ok = ok && ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'));
      if (ok && strlen(words[i]) > 2) ascii[na++] = (int)i;
    }
  if (t < na)
    snprintf(out, TAG_BYTES, "%s", words[ascii[t]]);
  else
    snprintf(out, TAG_BYTES, "%s%s", words[ascii[t % na]], words[ascii[(t / na) % na]]);
}

/* A post's text: a caption of log-normal length (median ~90 bytes) from
 * common words, then maybe "with @handle" mentions and #hashtags, at most
 * 2,200 bytes in all. */
typedef struct {
  char text[2300];
  int ntags, nment;
  char tags[TAGS_PER_POST_MAX][TAG_BYTES];
  int ment[2]; /* mentioned accounts */
} post_text;

static void make_caption(post_text *pt, const double *tag_cdf, const graph *g,
                         int author) {
  char *out = pt->text;
  size_t cap = 2200, want = (size_t)(90.0 * exp(0.8 * rnd_normal())), len = 0;
  if (want < 8) want = 8;
  if (want > 1800) want = 1800; /* room for mentions and tags */
  bool start = true;
  while (len < want) {
    const char *w = words[rnd_below((uint32_t)NWORDS)];
    size_t wl = strlen(w);
    if (len && len + wl + 2 > want) break;
    if (len) out[len++] = ' ';
    memcpy(out + len, w, wl);
    if (start && w[0] >= 'a' && w[0] <= 'z') out[len] = (char)(w[0] - 32);
    len += wl;
    start = false;
    if (rnd01() < 0.08) {
      out[len++] = rnd01() < 0.8 ? '.' : '!';
      start = true;
    }
  }
  pt->nment = 0;
  int64_t nf = g->fol_off[author + 1] - g->fol_off[author];
  if (nf > 0 && rnd01() < MENTION_SHARE) {
    int want_m = rnd01() < 0.7 ? 1 : 2;
    len += (size_t)snprintf(out + len, cap - len, " with");
    for (int m = 0; m < want_m; m++) {
      int who = g->fol[g->fol_off[author] + (int64_t)rnd_below((uint32_t)nf)];
      if (m == 1 && who == pt->ment[0]) break;
      pt->ment[pt->nment++] = who;
      len += (size_t)snprintf(out + len, cap - len, "%s @feed%06d", m ? " and" : "", who);
    }
  }
  pt->ntags = 0;
  if (rnd01() < HASHTAG_SHARE) {
    int want_t = 1 + (int)(-log(1 - rnd01()) * 2.0);
    if (want_t > TAGS_PER_POST_MAX) want_t = TAGS_PER_POST_MAX;
    for (int t = 0; t < want_t; t++) {
      char tg[TAG_BYTES];
      tag_name(pick_cdf(tag_cdf, NTAGS), tg);
      bool dup = false;
      for (int j = 0; j < pt->ntags && !dup; j++) dup = strcmp(pt->tags[j], tg) == 0;
      if (dup || len + strlen(tg) + 3 > cap) continue;
      len +=
          (size_t)snprintf(out + len, cap - len, "%s#%s", pt->ntags ? " " : "\n\n", tg);
      memcpy(pt->tags[pt->ntags++], tg, sizeof tg);
    }
  }
  out[len] = '\0';
}

/* ---- the bulk load ------------------------------------------------------- */

static int sql_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench_feed: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    return -1;
  }
  return 0;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
    fprintf(stderr, "bench_feed: prepare %s: %s\n", sql, sqlite3_errmsg(db));
    return NULL;
  }
  return s;
}

static int step_reset(sqlite3 *db, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "bench_feed: insert: %s\n", sqlite3_errmsg(db));
    return -1;
  }
  return 0;
}

typedef struct {
  uint8_t owner[16];
  int64_t post;
} tl_row;

static int cmp_tl(const void *a, const void *b) {
  const tl_row *x = a, *y = b;
  int c = memcmp(x->owner, y->owner, 16);
  return c ? c : (x->post > y->post) - (x->post < y->post);
}

static double secs_since(uint64_t t0) { return (double)(now_us() - t0) / 1e6; }

static int load(const char *dir, const ds_params *p, const graph *g, ds_info *in) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tessera.db", dir);
  sqlite3 *db = NULL;
  int rc = -1;
  sqlite3_stmt *st[12] = {0};
  double *tag_cdf = NULL;
  tl_row *tl = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    fprintf(stderr, "bench_feed: cannot open %s: %s\n", path,
            db ? sqlite3_errmsg(db) : "");
    goto out;
  }
  /* For the load only: no journal, no syncs, a large page cache. */
  if (sql_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                   " PRAGMA cache_size=-3000000; PRAGMA temp_store=MEMORY; BEGIN"))
    goto out;
  static const char *const sql[] = {
      "INSERT INTO accounts(id, login, password_hash, phone, phone_verified, email,"
      " identity_key, created_at) VALUES(?,?,?,NULL,0,NULL,?,?)",
      "INSERT INTO profiles(account_id, app, handle, name, bio, private, page, category,"
      " hours, website, created_at, updated_at) "
      "VALUES(?,'social',?,?,?,0,0,'','','',?,?)",
      "INSERT INTO devices(id, account_id, name, signature_key, certificate, token_hash,"
      " created_at, last_seen_at, revoked) VALUES(?,?,?,?,?,?,?,?,0)",
      "INSERT INTO social_follows(follower_id, followee_id, created_at) VALUES(?,?,?)",
      "INSERT INTO posts(id, author_id, app, caption, location, visibility, apps,"
      " created_at) VALUES(?,?,'social',?,?,?,?,?)",
      "INSERT INTO media(hash, kind, mime, size, width, height, refs, created_at)"
      " VALUES(?,'image',?,?,?,?,1,?)",
      "INSERT INTO post_media(post_id, idx, hash, alt) VALUES(?,?,?,?)",
      "INSERT INTO fanout_read(account_id, app, since) VALUES(?,?,?)",
      "INSERT INTO timelines(owner_id, app, post_id) VALUES(?,?,?)",
      "INSERT INTO post_tags(tag, post_id, open) VALUES(?,?,?)",
      "INSERT INTO post_mentions(post_id, account_id) VALUES(?,?)",
      "INSERT INTO notifications(id, account_id, app, kind, actor_id, post_id,"
      " comment_id, text, created_at) VALUES(?,?,'social','mention',?,?,NULL,'',?)",
  };
  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
    if (!(st[i] = prep(db, sql[i]))) goto out;
  int n = g->n;
  int64_t t_posts0_s = (g->post_ms[0] / 1000) - 400 * 86400; /* accounts and follows */
  /* One real argon2id string (interactive limits) shared by every account. */
  char pwhash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(pwhash, "bench password 1234", 19,
                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    goto out;
  uint64_t t0 = now_us();
  fprintf(stderr, "bench_feed: loading accounts, profiles, devices...\n");
  for (int i = 0; i < n; i++) {
    char login[32], name[64];
    const char *bio = i % 3 ? "Photos, travel and coffee." : "";
    uint8_t ik[32], dev[16], sig[32], cert[64], th[32];
    char tok[BENCH_TOKEN_LEN + 1];
    int64_t created = t_posts0_s + (int64_t)(rnd01() * 30 * 86400);
    snprintf(login, sizeof login, "feed%06d", i);
    snprintf(name, sizeof name, "Feed Reader %d", i);
    rnd_bytes(ik, sizeof ik);
    sqlite3_bind_blob(st[0], 1, g->id[i], 16, SQLITE_STATIC);
    sqlite3_bind_text(st[0], 2, login, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[0], 3, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st[0], 4, ik, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st[0], 5, created);
    if (step_reset(db, st[0])) goto out;
    sqlite3_bind_blob(st[1], 1, g->id[i], 16, SQLITE_STATIC);
    sqlite3_bind_text(st[1], 2, login, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[1], 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[1], 4, bio, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st[1], 5, created);
    sqlite3_bind_int64(st[1], 6, created);
    if (step_reset(db, st[1])) goto out;
    rnd_bytes(dev, sizeof dev);
    rnd_bytes(sig, sizeof sig);
    rnd_bytes(cert, sizeof cert);
    account_token(p, i, tok, th);
    sqlite3_bind_blob(st[2], 1, dev, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st[2], 2, g->id[i], 16, SQLITE_STATIC);
    sqlite3_bind_text(st[2], 3, "phone", -1, SQLITE_STATIC);
    sqlite3_bind_blob(st[2], 4, sig, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st[2], 5, cert, 64, SQLITE_STATIC);
    sqlite3_bind_blob(st[2], 6, th, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st[2], 7, created);
    sqlite3_bind_int64(st[2], 8, in->built_ms / 1000);
    if (step_reset(db, st[2])) goto out;
  }
  /* Follows in a random order (the order they were made in), before the posts. */
  fprintf(stderr, "bench_feed: loading %" PRId64 " follows (%.0f s so far)...\n",
          g->fol_off[n], secs_since(t0));
  int64_t nf = g->fol_off[n];
  int64_t *order = malloc(sizeof *order * (size_t)nf);
  if (!order) goto out;
  for (int i = 0; i < n; i++)
    for (int64_t e = g->fol_off[i]; e < g->fol_off[i + 1]; e++)
      order[e] = (int64_t)i << 32 | (uint32_t)g->fol[e];
  for (int64_t e = nf - 1; e > 0; e--) {
    int64_t j = (int64_t)(rnd01() * (double)(e + 1)), t = order[e];
    order[e] = order[j];
    order[j] = t;
  }
  for (int64_t e = 0; e < nf; e++) {
    int a = (int)(order[e] >> 32), b = (int)(uint32_t)order[e];
    sqlite3_bind_blob(st[3], 1, g->id[a], 16, SQLITE_STATIC);
    sqlite3_bind_blob(st[3], 2, g->id[b], 16, SQLITE_STATIC);
    sqlite3_bind_int64(st[3], 3, t_posts0_s + 30 * 86400 + e * 300 * 86400 / nf);
    if (step_reset(db, st[3])) {
      free(order);
      goto out;
    }
  }
  free(order);
  fprintf(stderr, "bench_feed: loading %d posts and their media (%.0f s so far)...\n",
          g->nposts, secs_since(t0));
  static const char *const cities[] = {"Lisbon", "Lake Geneva",        "Berlin",
                                       "Kyoto",  "Brooklyn, New York", "Cape Town",
                                       "Oaxaca", "Reykjavik"};
  static const int heights[] = {1080, 1350, 566, 1920};
  static post_text pt;
  if (!(tag_cdf = malloc(sizeof *tag_cdf * NTAGS))) goto out;
  double acc = 0;
  for (int t = 0; t < NTAGS; t++) tag_cdf[t] = acc += 1.0 / (t + 1);
  int64_t last_note = 0;
  for (int k = 0; k < g->nposts; k++) {
    int a = g->post_author[k];
    make_caption(&pt, tag_cdf, g, a);
    const char *loc = rnd01() < 0.2 ? cities[rnd_below(8)] : "";
    sqlite3_bind_int64(st[4], 1, g->post_id[k]);
    sqlite3_bind_blob(st[4], 2, g->id[a], 16, SQLITE_STATIC);
    sqlite3_bind_text(st[4], 3, pt.text, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[4], 4, loc, -1, SQLITE_STATIC);
    sqlite3_bind_text(st[4], 5, g->post_vis[k] ? "followers" : "public", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st[4], 6, 1 << APP_SOCIAL_ID);
    sqlite3_bind_int64(st[4], 7, g->post_ms[k]);
    if (step_reset(db, st[4])) goto out;
    double r = rnd01();
    int nm = r < 0.07 ? 0 : r < 0.92 ? 1 : 2 + (int)rnd_below(4);
    for (int m = 0; m < nm; m++) {
      uint8_t h[32];
      rnd_bytes(h, sizeof h);
      sqlite3_bind_blob(st[5], 1, h, 32, SQLITE_STATIC);
      sqlite3_bind_text(st[5], 2, rnd01() < 0.7 ? "image/jpeg" : "image/webp", -1,
                        SQLITE_STATIC);
      sqlite3_bind_int64(st[5], 3, 80000 + rnd_below(500000));
      sqlite3_bind_int64(st[5], 4, 1080);
      sqlite3_bind_int64(st[5], 5, heights[rnd_below(4)]);
      sqlite3_bind_int64(st[5], 6, g->post_ms[k] / 1000);
      if (step_reset(db, st[5])) goto out;
      sqlite3_bind_int64(st[6], 1, g->post_id[k]);
      sqlite3_bind_int64(st[6], 2, m);
      sqlite3_bind_blob(st[6], 3, h, 32, SQLITE_STATIC);
      sqlite3_bind_text(st[6], 4, rnd01() < 0.3 ? "a photo" : "", -1, SQLITE_STATIC);
      if (step_reset(db, st[6])) goto out;
      in->media++;
    }
    in->posts_followers += g->post_vis[k];
    /* Tags (open: public, and no author is private here) and mentions, with
     * the mentioned person's notification when they may see the post. */
    for (int t = 0; t < pt.ntags; t++) {
      sqlite3_bind_text(st[9], 1, pt.tags[t], -1, SQLITE_STATIC);
      sqlite3_bind_int64(st[9], 2, g->post_id[k]);
      sqlite3_bind_int64(st[9], 3, !g->post_vis[k]);
      if (step_reset(db, st[9])) goto out;
      in->tags++;
    }
    for (int m = 0; m < pt.nment; m++) {
      int who = pt.ment[m];
      sqlite3_bind_int64(st[10], 1, g->post_id[k]);
      sqlite3_bind_blob(st[10], 2, g->id[who], 16, SQLITE_STATIC);
      if (step_reset(db, st[10])) goto out;
      in->mentions++;
      bool sees = !g->post_vis[k];
      for (int64_t e = g->fol_off[who]; e < g->fol_off[who + 1] && !sees; e++)
        sees = g->fol[e] == a;
      if (!sees) continue;
      int64_t nid = g->post_ms[k] << ID_SHIFT;
      if (nid <= last_note) nid = last_note + 1;
      last_note = nid;
      sqlite3_bind_int64(st[11], 1, nid);
      sqlite3_bind_blob(st[11], 2, g->id[who], 16, SQLITE_STATIC);
      sqlite3_bind_blob(st[11], 3, g->id[a], 16, SQLITE_STATIC);
      sqlite3_bind_int64(st[11], 4, g->post_id[k]);
      sqlite3_bind_int64(st[11], 5, g->post_ms[k]);
      if (step_reset(db, st[11])) goto out;
    }
  }
  /* Marked authors: since their first post. */
  int64_t *first = calloc((size_t)n, sizeof *first);
  if (!first) goto out;
  for (int k = g->nposts - 1; k >= 0; k--) first[g->post_author[k]] = g->post_ms[k];
  in->marked_min = INT_MAX;
  for (int i = 0; i < n; i++) {
    if (!g->marked[i]) continue;
    sqlite3_bind_blob(st[7], 1, g->id[i], 16, SQLITE_STATIC);
    sqlite3_bind_int64(st[7], 2, APP_SOCIAL_ID);
    sqlite3_bind_int64(st[7], 3, first[i]);
    if (step_reset(db, st[7])) {
      free(first);
      goto out;
    }
    int f = (int)(g->fwr_off[i + 1] - g->fwr_off[i]);
    in->marked++;
    if (f < in->marked_min) in->marked_min = f;
    if (f > in->marked_max) in->marked_max = f;
  }
  free(first);
  if (!in->marked) in->marked_min = 0;
  /* Timelines: in post order, each chunk sorted by key. */
  fprintf(stderr, "bench_feed: loading timelines (%.0f s so far)...\n", secs_since(t0));
  size_t chunk = TL_CHUNK > (size_t)n ? TL_CHUNK : (size_t)n, ntl = 0;
  tl = malloc(sizeof *tl * chunk);
  if (!tl) goto out;
  for (int k = 0; k <= g->nposts; k++) {
    int a = k < g->nposts ? g->post_author[k] : -1;
    int64_t nfw = a >= 0 && !g->marked[a] ? g->fwr_off[a + 1] - g->fwr_off[a] : 0;
    if (k == g->nposts || ntl + (size_t)nfw > chunk) {
      qsort(tl, ntl, sizeof *tl, cmp_tl);
      for (size_t r = 0; r < ntl; r++) {
        sqlite3_bind_blob(st[8], 1, tl[r].owner, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st[8], 2, APP_SOCIAL_ID);
        sqlite3_bind_int64(st[8], 3, tl[r].post);
        if (step_reset(db, st[8])) goto out;
      }
      in->timelines += (int64_t)ntl;
      ntl = 0;
      fprintf(stderr, "\r  %" PRId64 " rows, %d/%d posts (%.0f s)", in->timelines, k,
              g->nposts, secs_since(t0));
    }
    for (int64_t e = 0; e < nfw; e++) {
      memcpy(tl[ntl].owner, g->id[g->fwr[g->fwr_off[a] + e]], 16);
      tl[ntl++].post = g->post_id[k];
    }
  }
  fprintf(stderr, "\nbench_feed: committing (%.0f s so far)...\n", secs_since(t0));
  if (sql_exec(db, "COMMIT") || sql_exec(db, "PRAGMA journal_mode=WAL")) goto out;
  in->follows = nf;
  in->max_post_id = g->post_id[g->nposts - 1];
  in->fanout_author = g->fanout_author;
  in->read_author = g->read_author;
  in->median_author = g->median_author;
  rc = 0;
out:
  free(tl);
  free(tag_cdf);
  for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) sqlite3_finalize(st[i]);
  sqlite3_close(db);
  return rc;
}

/* Starts the server on dir (when it was just emptied: the schema), stops it. */
static int make_schema(const char *server, const char *dir) {
  const char *extra[] = {"--data-dir", dir, NULL};
  bench_server s;
  int port = bench_server_start(&s, server, 1, extra);
  g_server = s.pid;
  if (!port) fprintf(stderr, "bench_feed: tesserad did not start on %s\n", dir);
  int rc = bench_server_stop(&s);
  g_server = 0;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tessera.db", dir);
  return port && !rc && access(path, R_OK) == 0 ? 0 : -1;
}

static int cmp_i64s(const void *a, const void *b) { return cmp_i64(a, b); }

/* What a reader's home feed merges: fan-out-on-read followees, timeline rows. */
static void reader_shape(const graph *g, ds_info *in) {
  int64_t *big = calloc((size_t)g->n, sizeof *big),
          *tl = calloc((size_t)g->n, sizeof *tl);
  if (!big || !tl) {
    free(big);
    free(tl);
    return;
  }
  int64_t sum = 0;
  for (int i = 0; i < g->n; i++) {
    for (int64_t e = g->fol_off[i]; e < g->fol_off[i + 1]; e++) {
      int f = g->fol[e];
      if (g->marked[f])
        big[i]++;
      else
        tl[i] += g->nposts_of[f];
    }
    sum += big[i];
  }
  qsort(big, (size_t)g->n, sizeof *big, cmp_i64s);
  qsort(tl, (size_t)g->n, sizeof *tl, cmp_i64s);
  in->big_mean100 = sum * 100 / g->n;
  in->big_p50 = big[g->n / 2];
  in->big_p90 = big[g->n * 9 / 10];
  in->big_max = big[g->n - 1];
  in->tl_p50 = tl[g->n / 2];
  in->tl_p90 = tl[g->n * 9 / 10];
  free(big);
  free(tl);
}

static int build(const char *server, const char *dir, const ds_params *p, ds_info *in) {
  char cmd[2 * PATH_MAX + 32];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  if (strchr(dir, '\'') || system(cmd) != 0) {
    fprintf(stderr, "bench_feed: cannot empty %s\n", dir);
    return -1;
  }
  uint64_t t0 = now_us();
  if (make_schema(server, dir)) return -1;
  memset(in, 0, sizeof *in);
  in->built_ms = wall_ms();
  graph g;
  fprintf(stderr, "bench_feed: generating the graph and posts...\n");
  int rc = make_graph(p, in->built_ms - 60000, &g);
  if (rc) fprintf(stderr, "bench_feed: generating the dataset failed (out of memory?)\n");
  if (!rc) rc = load(dir, p, &g, in);
  if (!rc) reader_shape(&g, in);
  graph_free(&g);
  in->build_s = (int64_t)(secs_since(t0) + 0.5);
  if (!rc) rc = info_write(dir, p, in);
  return rc;
}

/* Deletes what a run added (posts above the dataset's last id, their
 * timeline rows and media links) and resets the devices' last_seen_at.
 * Tables a newer server migration adds are skipped while they are not
 * there yet. */
static int restore(const char *dir, const ds_info *in) {
  static const char *const by_post[] = {
      "timelines",     "timeline_buffer", "timeline_purge", "post_media", "post_tags",
      "post_mentions", "post_views",      "notifications",  NULL,
  };
  char path[PATH_MAX], sql[2048];
  snprintf(path, sizeof path, "%s/tessera.db", dir);
  sqlite3 *db = NULL;
  int rc = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10000);
    int64_t m = in->max_post_id;
    size_t n = (size_t)snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;");
    for (int i = 0; by_post[i]; i++) {
      sqlite3_stmt *t = prep(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                                 " name = ?");
      bool there = false;
      if (t) {
        sqlite3_bind_text(t, 1, by_post[i], -1, SQLITE_STATIC);
        there = sqlite3_step(t) == SQLITE_ROW;
      }
      sqlite3_finalize(t);
      if (there)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              " DELETE FROM %s WHERE post_id > %" PRId64 ";", by_post[i],
                              m);
    }
    snprintf(sql + n, sizeof sql - n,
             " DELETE FROM posts WHERE id > %" PRId64 ";"
             " UPDATE devices SET last_seen_at = %" PRId64
             " WHERE last_seen_at <> %" PRId64
             "; COMMIT; PRAGMA wal_checkpoint(TRUNCATE)",
             m, in->built_ms / 1000, in->built_ms / 1000);
    rc = sql_exec(db, sql);
  } else {
    fprintf(stderr, "bench_feed: cannot open %s\n", path);
  }
  sqlite3_close(db);
  return rc;
}

/* ---- measuring feed reads ------------------------------------------------ */

typedef struct {
  uint64_t done, errors, posts, full, backlog_max;
  int first_error;
  uint32_t hist[NBUCKETS];
} fresult;

typedef struct {
  int fd;
  bool busy;
  int reader;
  uint64_t t0; /* the request's scheduled (paced) or write (max) time */
  size_t len;
  char *buf;
} fconn;

/* Shared with the load processes: tokens, and each reader's first-page cursor. */
static char (*tokens)[BENCH_TOKEN_LEN + 1];
static int64_t *cursors; /* MAP_SHARED: written by the page-1 runs */
static int *page2_readers, n_page2;
static int n_accounts;

static size_t bucket_of(uint64_t us) {
  if (us < H1) return (size_t)us;
  if (us < 1000000) return H1 + (size_t)((us - H1) / 100);
  uint64_t b = H2 + (us - 1000000) / 10000;
  return b < NBUCKETS ? (size_t)b : NBUCKETS - 1;
}

static uint64_t bucket_us(size_t b) {
  return b < H1 ? b : b < H2 ? H1 + (b - H1) * 100 : 1000000 + (b - H2) * 10000;
}

static double percentile_ms(const fresult *r, double q) {
  uint64_t total = 0;
  for (size_t i = 0; i < NBUCKETS; i++) total += r->hist[i];
  if (!total) return 0;
  uint64_t want = (uint64_t)(q * (double)total), acc = 0;
  if (want >= total) want = total - 1;
  for (size_t i = 0; i < NBUCKETS; i++) {
    acc += r->hist[i];
    if (acc > want) return (double)bucket_us(i) / 1000.0;
  }
  return (double)bucket_us(NBUCKETS - 1) / 1000.0;
}

static int tcp_from(int port, uint32_t src) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
  struct sockaddr_in d = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if ((src && bind(fd, (struct sockaddr *)&s, sizeof s) != 0) ||
      connect(fd, (struct sockaddr *)&d, sizeof d) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool send_feed(fconn *c, int reader, int64_t before) {
  char req[256], b[40] = "";
  if (before) snprintf(b, sizeof b, "&before=%" PRId64, before);
  int n = snprintf(req, sizeof req,
                   "GET /v1/apps/social/feed?limit=20%s HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\n\r\n",
                   b, tokens[reader]);
  for (int off = 0; off < n;) {
    ssize_t k = write(c->fd, req + off, (size_t)(n - off));
    if (k < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = c->fd, .events = POLLOUT};
      poll(&p, 1, 100);
      continue;
    }
    if (k <= 0) return false;
    off += (int)k;
  }
  c->busy = true;
  c->reader = reader;
  return true;
}

/* A complete answer at the start of c->buf: 1 (consumed, counted when
 * count), 0 (incomplete), -1 (malformed). */
static int take_answer(fconn *c, fresult *res, uint64_t t, bool count, bool page1) {
  char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
  if (!end) return c->len == CONN_BUF ? -1 : 0;
  size_t hl = (size_t)(end - c->buf) + 4, cl = 0;
  bool have_cl = false;
  for (char *h = c->buf; h && h < end; h = memchr(h, '\n', (size_t)(end - h))) {
    if (*h == '\n') h++;
    if (strncasecmp(h, "Content-Length:", 15) == 0) {
      cl = (size_t)atol(h + 15);
      have_cl = true;
    }
  }
  if (!have_cl || hl + cl > CONN_BUF) return -1;
  if (c->len < hl + cl) return 0;
  int status = c->len >= 12 ? atoi(c->buf + 9) : 0;
  const char *body = c->buf + hl;
  uint64_t posts = 0;
  for (const char *q = body; (q = memmem(q, cl - (size_t)(q - body), "\"caption\":", 10));
       q += 10)
    posts++;
  if (page1 && status == 200) {
    const char *nx = memmem(body, cl, "\"next\":\"", 8);
    cursors[c->reader] = nx ? strtoll(nx + 8, NULL, 10) : -1;
  }
  if (count) {
    res->done++;
    if (status != 200) {
      if (!res->errors) res->first_error = status;
      res->errors++;
    }
    res->posts += posts;
    res->full += posts == 20;
    res->hist[bucket_of(t - c->t0)]++;
  }
  memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
  c->len -= hl + cl;
  c->busy = false;
  return 1;
}

/* Load process k: nconns connections from 127.1.k.(1..), paced at rate (0:
 * as fast as answers come). Counts the answers that arrive in [t_start,
 * t_end) (latency from the request's scheduled time when paced, so an
 * overloaded server's backlog shows); after t_end sends nothing and waits
 * up to DRAIN_S for the answers still due, so runs do not overlap. */
static int generator(int k, int procs, int port, int nconns, double rate, bool page1,
                     uint64_t t_start, uint64_t t_end, int out_fd) {
  fresult *res = calloc(1, sizeof *res);
  fconn *cs = calloc((size_t)nconns, sizeof *cs);
  int *idle = calloc((size_t)nconns, sizeof *idle), nidle = 0;
  int ep = epoll_create1(0);
  if (!res || !cs || !idle || ep < 0) return 1;
  rng_state = now_us() ^ ((uint64_t)k << 40) ^ (uint64_t)getpid();
  for (int i = 0; i < nconns; i++) {
    fconn *c = &cs[i];
    c->buf = malloc(CONN_BUF);
    c->fd = tcp_from(port, 0x7f010000u | (uint32_t)k << 8 | (uint32_t)(i + 1));
    if (!c->buf || c->fd < 0) {
      fprintf(stderr, "bench_feed: load %d: connect: %s\n", k, strerror(errno));
      return 1;
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    idle[nidle++] = i;
  }
  /* The processes' schedules interleave: process k of P sends at
   * t0 + (k + P * j) / total rate. */
  double gap = rate > 0 ? 1e6 / rate : 0,
         due = (double)(t_start - 1000000u) + (gap ? gap * k / procs : 0);
  struct epoll_event evs[256];
  for (;;) {
    uint64_t t = now_us();
    if (t >= t_end && (nidle == nconns || t >= t_end + DRAIN_S * 1000000u)) break;
    /* Send what is due (paced) or fill every idle connection (max). */
    while (t < t_end && nidle > 0 && (!gap || due <= (double)t)) {
      fconn *c = &cs[idle[--nidle]];
      int reader;
      int64_t before = 0;
      if (page1) {
        reader = (int)rnd_below((uint32_t)n_accounts);
      } else {
        reader = page2_readers[rnd_below((uint32_t)n_page2)];
        before = cursors[reader];
      }
      c->t0 = gap ? (uint64_t)due : t;
      if (!send_feed(c, reader, before)) {
        fprintf(stderr, "bench_feed: load %d: write failed\n", k);
        return 1;
      }
      if (gap) due += gap;
    }
    if (gap && due < (double)t) {
      uint64_t backlog = (uint64_t)(((double)t - due) / gap);
      if (backlog > res->backlog_max) res->backlog_max = backlog;
    }
    int n = epoll_wait(ep, evs, 256, gap ? 1 : 100);
    t = now_us();
    for (int e = 0; e < n; e++) {
      fconn *c = &cs[evs[e].data.u32];
      ssize_t r = read(c->fd, c->buf + c->len, CONN_BUF - c->len);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        fprintf(stderr, "bench_feed: load %d: the server closed a connection\n", k);
        return 1;
      }
      c->len += (size_t)r;
      bool counted = t >= t_start && t < t_end;
      int got = c->busy ? take_answer(c, res, t, counted, page1) : -1;
      if (got < 0) {
        fprintf(stderr, "bench_feed: load %d: a malformed or unexpected answer\n", k);
        return 1;
      }
      if (got == 1) idle[nidle++] = evs[e].data.u32;
    }
  }
  if (nidle != nconns) {
    fprintf(stderr, "bench_feed: load %d: %d requests unanswered %d s after the end\n", k,
            nconns - nidle, DRAIN_S);
    return 1;
  }
  for (int i = 0; i < nconns; i++) close(cs[i].fd);
  const char *p = (const char *)res;
  for (size_t left = sizeof *res; left;) {
    ssize_t w = write(out_fd, p, left);
    if (w <= 0) return 1;
    p += w;
    left -= (size_t)w;
  }
  return 0;
}

/* Waits for pid at most ms; kills it past that. true when it exited 0. */
static bool reap(pid_t pid, int ms) {
  int st;
  for (uint64_t dl = bench_clock_ms() + (uint64_t)ms; bench_clock_ms() < dl;
       poll(NULL, 0, 10))
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0;
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return false;
}

/* One measurement of secs after a 1 s warm-up; 0 or -1. */
static int measure(int port, int procs, int nconns, double rate, bool page1, int secs,
                   fresult *all) {
  memset(all, 0, sizeof *all);
  uint64_t t_start = now_us() + 1000000u, t_end = t_start + (uint64_t)secs * 1000000u;
  int fds[MAX_PROCS];
  pid_t kids[MAX_PROCS];
  for (int k = 0; k < procs; k++) {
    int pp[2];
    if (pipe(pp) != 0) return -1;
    kids[k] = fork();
    if (kids[k] == 0) {
      close(pp[0]);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      _exit(
          generator(k, procs, port, nconns, rate / procs, page1, t_start, t_end, pp[1]));
    }
    g_kids[k] = kids[k];
    close(pp[1]);
    fds[k] = pp[0];
  }
  fresult *one = calloc(1, sizeof *one);
  bool ok = one != NULL;
  for (int k = 0; k < procs; k++) {
    size_t got = 0;
    while (ok && got < sizeof *one) {
      struct pollfd pf = {.fd = fds[k], .events = POLLIN};
      int64_t left_ms = ((int64_t)t_end - (int64_t)now_us()) / 1000;
      if (poll(&pf, 1, (int)(left_ms > 0 ? left_ms : 0) + (DRAIN_S + 15) * 1000) <= 0) {
        ok = false;
        break;
      }
      ssize_t r = read(fds[k], (char *)one + got, sizeof *one - got);
      if (r <= 0) {
        ok = false;
        break;
      }
      got += (size_t)r;
    }
    if (ok) {
      all->done += one->done;
      if (!all->errors) all->first_error = one->first_error;
      all->errors += one->errors;
      all->posts += one->posts;
      all->full += one->full;
      if (one->backlog_max > all->backlog_max) all->backlog_max = one->backlog_max;
      for (size_t i = 0; i < NBUCKETS; i++) all->hist[i] += one->hist[i];
    }
    close(fds[k]);
  }
  free(one);
  for (int k = 0; k < procs; k++) {
    if (!reap(kids[k], 5000)) ok = false;
    g_kids[k] = 0;
  }
  return ok ? 0 : -1;
}

/* Reads the file once so that it sits in the page cache (as on a server
 * that has been running); returns the seconds it took. */
static double preload(const char *path) {
  uint64_t t0 = now_us();
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  static char buf[1 << 20];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return secs_since(t0);
}

static int read_bench(int port, int procs, int nconns, const double *rates, int nrates,
                      int secs, int runs) {
  printf("feed reads: %d load processes x %d keep-alive connections, runs of %d s after"
         " a 1 s warm-up each\n",
         procs, nconns, secs);
  fresult *res = malloc(sizeof *res);
  if (!res) return -1;
  /* Warm-up (unmeasured): every connection busy for 3 s; it also gives
   * first-page cursors for the second-page runs. */
  if (measure(port, procs, nconns, 0, true, 3, res) != 0 || res->errors) {
    fprintf(stderr, "bench_feed: warm-up failed (%" PRIu64 " errors, first status %d)\n",
            res->errors, res->first_error);
    free(res);
    return -1;
  }
  printf("  warm-up: %.0f requests/s as fast as answers come\n", (double)res->done / 3);
  int rc = 0;
  for (int ri = 0; ri < nrates && rc == 0; ri++) {
    for (int page = 1; page <= 2 && rc == 0; page++) {
      if (page == 2) {
        n_page2 = 0;
        for (int i = 0; i < n_accounts; i++)
          if (cursors[i] > 0) page2_readers[n_page2++] = i;
        if (n_page2 < 10) {
          fprintf(stderr, "bench_feed: too few readers with a second page (%d)\n",
                  n_page2);
          rc = -1;
          break;
        }
      }
      double thr[99], p50[99], p90[99], p99[99], mean[99];
      char label[64];
      if (rates[ri] > 0)
        snprintf(label, sizeof label, "paced %g/s", rates[ri]);
      else
        snprintf(label, sizeof label, "max (1 in flight per connection)");
      printf("  page %d, %s%s:\n", page, label,
             page == 2 ? "" : ", readers uniform over all accounts");
      if (page == 2)
        printf("    (readers with a first-page cursor so far: %d)\n", n_page2);
      for (int r = 0; r < runs; r++) {
        if (measure(port, procs, nconns, rates[ri], page == 1, secs, res) != 0 ||
            res->errors || !res->done) {
          fprintf(stderr,
                  "bench_feed: run failed (%" PRIu64 " answers, %" PRIu64
                  " errors, first status %d)\n",
                  res->done, res->errors, res->first_error);
          rc = -1;
          break;
        }
        thr[r] = (double)res->done / secs;
        p50[r] = percentile_ms(res, .5);
        p90[r] = percentile_ms(res, .9);
        p99[r] = percentile_ms(res, .99);
        mean[r] = (double)res->posts / (double)res->done;
        printf("    run %d: %.1f req/s, p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f ms; %.2f"
               " posts per answer (%.1f%% with 20)%s\n",
               r + 1, thr[r], p50[r], p90[r], p99[r], percentile_ms(res, .999), mean[r],
               100.0 * (double)res->full / (double)res->done,
               rates[ri] > 0 && res->backlog_max > rates[ri] / procs / 10
                   ? " [the paced rate was not kept up: backlog]"
                   : "");
      }
      if (rc) break;
      printf("    median of %d: %.1f req/s, p50 %.2f p90 %.2f p99 %.2f ms, %.2f posts per"
             " answer\n",
             runs, bench_median(thr, runs), bench_median(p50, runs),
             bench_median(p90, runs), bench_median(p99, runs), bench_median(mean, runs));
    }
  }
  free(res);
  return rc;
}

/* ---- measuring fan-out
 * ----------------------------------------------------------------- */

/* One keep-alive connection used blockingly (reconnects when the server
 * closed it between calls). */
typedef struct {
  int fd, port;
  uint32_t src;
} kconn;

static char kbuf[CONN_BUF];

/* Sends req, reads one answer into kbuf; status (and the body), or -1.
 * *us: from the write to the answer's last byte. */
static int kcall(kconn *k, const char *req, const char **body, uint64_t *us) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (k->fd < 0 && (k->fd = tcp_from(k->port, k->src)) < 0) return -1;
    size_t n = strlen(req), len = 0;
    uint64_t t0 = now_us();
    if (write(k->fd, req, n) != (ssize_t)n) {
      close(k->fd);
      k->fd = -1;
      continue;
    }
    for (;;) {
      struct pollfd p = {.fd = k->fd, .events = POLLIN};
      if (poll(&p, 1, 30000) <= 0) return -1; /* no answer in 30 s */
      ssize_t r = read(k->fd, kbuf + len, sizeof kbuf - 1 - len);
      if (r <= 0) break;
      len += (size_t)r;
      kbuf[len] = '\0';
      char *end = strstr(kbuf, "\r\n\r\n");
      if (!end) continue;
      const char *cl = strcasestr(kbuf, "\r\nContent-Length:");
      size_t want =
          (size_t)(end - kbuf) + 4 + (cl && cl < end ? (size_t)atol(cl + 17) : 0);
      if (len < want) continue;
      *us = now_us() - t0;
      if (body) *body = end + 4;
      return atoi(kbuf + 9);
    }
    close(k->fd);
    k->fd = -1;
    if (len) return -1; /* closed mid-answer */
  }
  return -1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, int n, double q) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  return (double)v[(int)(q * (n - 1) + 0.5)] / 1000.0;
}

/* Milliseconds from t0_us until the server's timeline write buffer or
 * purge list (table, in db) is empty: its background job has moved every
 * fan-out row into timelines, or deleted every row a deleted post left.
 * -1 after 30 s or on an error. */
static double drained_ms(sqlite3 *db, const char *table, uint64_t t0_us) {
  char sql[80];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  sqlite3_stmt *s = prep(db, sql);
  double ms = -1;
  while (s && now_us() - t0_us < 30000000u) {
    int st = sqlite3_step(s);
    long n = st == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (n == 0) {
      ms = (double)(now_us() - t0_us) / 1000.0;
      break;
    }
    if (n < 0) break;
    poll(NULL, 0, 1);
  }
  sqlite3_finalize(s);
  return ms;
}

/* Author a posts `count` times (after one unmeasured post); after each 201
 * a different follower (from followers[]) reads their feed, which must
 * show the post first; then the wait until the timeline write buffer is
 * empty again (the rows moved into timelines). */
static int fanout_case(int port, const char *dir, const char *what, int a,
                       const int *followers, int nfw, int count) {
  kconn author = {.fd = -1, .port = port, .src = 0x7f000002u};
  kconn reader = {.fd = -1, .port = port, .src = 0x7f000003u};
  uint64_t *post_us = calloc((size_t)count, sizeof *post_us);
  uint64_t *read_us = calloc((size_t)count, sizeof *read_us);
  uint64_t *moved_us = calloc((size_t)count, sizeof *moved_us);
  uint64_t *del_us = calloc((size_t)count, sizeof *del_us);
  uint64_t *purged_us = calloc((size_t)count, sizeof *purged_us);
  int64_t *ids = calloc((size_t)count, sizeof *ids);
  int shown = 0, rc = -1;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tessera.db", dir);
  sqlite3 *db = NULL;
  if (!post_us || !read_us || !moved_us || !del_us || !purged_us || !ids ||
      sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    goto out;
  for (int i = -1; i < count; i++) {
    char body[512], req[1024];
    int bl = snprintf(body, sizeof body,
                      "{\"caption\":\"Fan-out bench post %d: evening light over the old"
                      " harbour, fishing boats coming in, gulls everywhere\"}",
                      i);
    snprintf(
        req, sizeof req,
        "POST /v1/apps/social/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
        tokens[a], bl, body);
    const char *b = NULL;
    uint64_t us = 0;
    int st = kcall(&author, req, &b, &us);
    uint64_t answered = now_us();
    const char *idp = st == 201 && b ? strstr(b, "\"post\":{\"id\":\"") : NULL;
    if (!idp) {
      fprintf(stderr, "bench_feed: %s: POST answered %d: %.200s\n", what, st, b ? b : "");
      goto out;
    }
    int64_t id = strtoll(idp + 14, NULL, 10);
    int f = followers[(i + 1) % nfw];
    snprintf(req, sizeof req,
             "GET /v1/apps/social/feed?limit=20 HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n",
             tokens[f]);
    uint64_t rus = 0;
    st = kcall(&reader, req, &b, &rus);
    const char *top = st == 200 && b ? strstr(b, "\"posts\":[{\"id\":\"") : NULL;
    if (st != 200) {
      fprintf(stderr, "bench_feed: %s: the follower's feed answered %d\n", what, st);
      goto out;
    }
    bool first = top && strtoll(top + 16, NULL, 10) == id;
    double moved = drained_ms(db, "timeline_buffer", answered);
    if (moved < 0) {
      fprintf(stderr, "bench_feed: %s: the timeline buffer did not drain\n", what);
      goto out;
    }
    if (i >= 0) {
      post_us[i] = us;
      read_us[i] = rus;
      moved_us[i] = (uint64_t)(moved * 1000);
      ids[i] = id;
      shown += first;
    }
    poll(NULL, 0, 250);
  }
  /* The author deletes the posts again, one after another. */
  for (int i = 0; i < count; i++) {
    char req[512];
    snprintf(req, sizeof req,
             "DELETE /v1/apps/social/posts/%" PRId64 " HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
             ids[i], tokens[a]);
    int st = kcall(&author, req, NULL, &del_us[i]);
    double purged = st == 200 ? drained_ms(db, "timeline_purge", now_us()) : -1;
    if (purged < 0) {
      fprintf(stderr, "bench_feed: %s: DELETE answered %d, or no purge\n", what, st);
      goto out;
    }
    purged_us[i] = (uint64_t)(purged * 1000);
    poll(NULL, 0, 50);
  }
  printf("  %s:\n    POST -> 201 over %d posts: p50 %.2f p90 %.2f p99 %.2f max %.2f ms\n"
         "    the follower's feed read right after: p50 %.2f p99 %.2f ms; it showed the"
         " new post first %d/%d times\n"
         "    every row moved from the write buffer into timelines, after the 201:"
         " p50 %.2f p99 %.2f ms\n"
         "    DELETE -> 200 of each post afterwards: p50 %.2f p99 %.2f ms; its timeline"
         " rows purged after the 200: p50 %.2f p99 %.2f ms\n",
         what, count, pct_ms(post_us, count, .5), pct_ms(post_us, count, .9),
         pct_ms(post_us, count, .99), pct_ms(post_us, count, 1),
         pct_ms(read_us, count, .5), pct_ms(read_us, count, .99), shown, count,
         pct_ms(moved_us, count, .5), pct_ms(moved_us, count, .99),
         pct_ms(del_us, count, .5), pct_ms(del_us, count, .99),
         pct_ms(purged_us, count, .5), pct_ms(purged_us, count, .99));
  fflush(stdout);
  rc = shown == count ? 0 : -1;
  if (rc)
    fprintf(stderr, "bench_feed: %s: a follower's feed did not show the post\n", what);
out:
  if (author.fd >= 0) close(author.fd);
  if (reader.fd >= 0) close(reader.fd);
  sqlite3_close(db);
  free(post_us);
  free(read_us);
  free(moved_us);
  free(del_us);
  free(purged_us);
  free(ids);
  return rc;
}

/* The followers of account a, read from the store (the server's view). */
static int followers_of(const char *dir, const ds_params *p, int a, int **out, int max) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tessera.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  int n = -1;
  uint8_t id[16];
  account_id(p, a, id);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      (s = prep(db, "SELECT a.login FROM social_follows f JOIN accounts a ON"
                    " a.id = f.follower_id WHERE f.followee_id = ? ORDER BY random()"
                    " LIMIT ?"))) {
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, max);
    *out = malloc(sizeof **out * (size_t)max);
    n = *out ? 0 : -1;
    while (n >= 0 && sqlite3_step(s) == SQLITE_ROW) {
      const char *login = (const char *)sqlite3_column_text(s, 0);
      if (login && strncmp(login, "feed", 4) == 0) (*out)[n++] = atoi(login + 4);
    }
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

static int count_followers(const char *dir, const ds_params *p, int a) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tessera.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  int n = -1;
  uint8_t id[16];
  account_id(p, a, id);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      (s = prep(db, "SELECT COUNT(*) FROM social_follows WHERE followee_id = ?"))) {
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int(s, 0);
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

static int fanout_bench(int port, const char *dir, const ds_params *p, const ds_info *in,
                        int count) {
  printf("fan-out: %d posts per author (after one unmeasured), 250 ms apart, one"
         " keep-alive connection each for the author and the followers\n",
         count);
  fflush(stdout);
  const struct {
    int author;
    const char *kind;
  } cases[] = {
      {in->fanout_author, "fan-out on write"},
      {in->read_author, "fan-out on read"},
      {in->median_author, "baseline: a median author, fan-out on write"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int a = cases[c].author;
    if (a < 0) continue;
    int nf = count_followers(dir, p, a), *fw = NULL;
    int got = followers_of(dir, p, a, &fw, count + 1);
    char what[160];
    snprintf(what, sizeof what, "%s (author feed%06d, %d followers)", cases[c].kind, a,
             nf);
    if (nf < 1 || got < 1) {
      fprintf(stderr, "bench_feed: %s: no followers found\n", what);
      free(fw);
      return -1;
    }
    int rc = fanout_case(port, dir, what, a, fw, got, count);
    free(fw);
    if (rc) return rc;
  }
  return 0;
}

/* ---- main
 * ------------------------------------------------------------------------------- */

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [-a accounts] [-n posts] [-T threshold] [-w workers] [-p procs]\n"
          "          [-c conns-per-proc] [-R rate[,rate...] (0: max)] [-t seconds]\n"
          "          [-r runs] [-f fan-out posts] [--only read|fanout] [--cache dir]\n"
          "          [--rebuild] [--server path]\n",
          argv0);
}

int main(int argc, char **argv) {
  ds_params p = {.accounts = 100000, .posts = 1000000, .threshold = 10000, .seed = 1};
  int workers = 2, procs = 2, nconns = 16, secs = 5, runs = 3, fposts = 20, nrates = 0;
  double rates[MAX_RATES];
  bool rebuild = false;
  const char *only = NULL;
  char server[PATH_MAX] = "", cache[DIR_MAX - 64] = "", self[DIR_MAX - 128];
  const char *rate_arg = "1000,0";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--rebuild")) {
      rebuild = true;
      continue;
    }
    if (!v) {
      usage(argv[0]);
      return 2;
    }
    i++;
    if (!strcmp(a, "-a"))
      p.accounts = atoi(v);
    else if (!strcmp(a, "-n"))
      p.posts = atoi(v);
    else if (!strcmp(a, "-T"))
      p.threshold = atoi(v);
    else if (!strcmp(a, "-w"))
      workers = atoi(v);
    else if (!strcmp(a, "-p"))
      procs = atoi(v);
    else if (!strcmp(a, "-c"))
      nconns = atoi(v);
    else if (!strcmp(a, "-R"))
      rate_arg = v;
    else if (!strcmp(a, "-t"))
      secs = atoi(v);
    else if (!strcmp(a, "-r"))
      runs = atoi(v);
    else if (!strcmp(a, "-f"))
      fposts = atoi(v);
    else if (!strcmp(a, "--only"))
      only = v;
    else if (!strcmp(a, "--cache"))
      snprintf(cache, sizeof cache, "%s", v);
    else if (!strcmp(a, "--server"))
      snprintf(server, sizeof server, "%s", v);
    else {
      usage(argv[0]);
      return 2;
    }
  }
  for (const char *r = rate_arg; *r && nrates < MAX_RATES;) {
    char *end;
    rates[nrates++] = strtod(r, &end);
    if (end == r || rates[nrates - 1] < 0) nrates = -100;
    r = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') nrates = -100;
  }
  if (p.accounts < 1000 || p.accounts > 10000000 || p.posts < 1000 ||
      p.posts > 100000000 || p.threshold < 10 || p.threshold >= p.accounts - 1 ||
      workers < 1 || procs < 1 || procs > MAX_PROCS || nconns < 1 || nconns > 250 ||
      secs < 1 || runs < 1 || runs > 99 || fposts < 1 || fposts > 1000 || nrates < 1 ||
      (only && strcmp(only, "read") && strcmp(only, "fanout"))) {
    fprintf(stderr, "bench_feed: bad arguments\n");
    usage(argv[0]);
    return 2;
  }
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) return 2;
  self[k] = '\0';
  *strrchr(self, '/') = '\0';
  if (!server[0]) snprintf(server, sizeof server, "%s/../tesserad", self);
  if (access(server, X_OK) != 0) {
    printf("bench_feed: skipped (no tesserad at %s)\n", server);
    return 0;
  }
  if (!cache[0]) snprintf(cache, sizeof cache, "%s/../../bench-feed-data", self);
  char dir[DIR_MAX], real[PATH_MAX];
  if (mkdir(cache, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "bench_feed: cannot create %s: %s\n", cache, strerror(errno));
    return 1;
  }
  if (realpath(cache, real) && strlen(real) < sizeof cache)
    memcpy(cache, real, strlen(real) + 1);
  snprintf(dir, sizeof dir, "%s/a%d-n%d-T%d-s%" PRIu64, cache, p.accounts, p.posts,
           p.threshold, p.seed);
  if (sodium_init() < 0) return 2;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  ds_info in;
  bool reused = !rebuild && info_read(dir, &p, &in) == 0;
  if (!reused) {
    printf("bench_feed: building the dataset in %s (%s)\n", dir,
           rebuild ? "--rebuild" : "none cached with these parameters");
    fflush(stdout);
    if (build(server, dir, &p, &in) != 0) {
      fprintf(stderr, "bench_feed: building the dataset failed\n");
      return 1;
    }
  } else if (restore(dir, &in) != 0) {
    fprintf(stderr, "bench_feed: cannot restore the cached dataset; try --rebuild\n");
    return 1;
  }
  char dbpath[DIR_MAX + 16];
  snprintf(dbpath, sizeof dbpath, "%s/tessera.db", dir);
  struct stat sb;
  double gb = stat(dbpath, &sb) == 0 ? (double)sb.st_size / 1e9 : 0;
  time_t bt = (time_t)(in.built_ms / 1000);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&bt));
  printf("bench_feed: dataset %s (%s; built %s in %" PRId64 " s)\n", dir,
         reused ? "reused from the cache" : "just built", when, in.build_s);
  printf("  %d accounts (each with a social profile and a device), %" PRId64
         " follows (mean %.1f per account), %d posts (%" PRId64
         " followers-only) with %" PRId64 " media, over %d days\n",
         p.accounts, in.follows, (double)in.follows / p.accounts, p.posts,
         in.posts_followers, in.media, DAYS);
  printf("  %" PRId64 " post_tags rows (hashtags in %.0f%% of posts), %" PRId64
         " post_mentions rows; %" PRId64 " fan-out-on-read authors (fanout_read; %d-%d"
         " followers), %" PRId64 " timeline rows; database %.2f GB\n",
         in.tags, 100 * HASHTAG_SHARE, in.mentions, in.marked, in.marked_min,
         in.marked_max, in.timelines, gb);
  printf("  per reader: %.1f fan-out-on-read followees (p50 %" PRId64 ", p90 %" PRId64
         ", max %" PRId64 "), timeline rows p50 %" PRId64 ", p90 %" PRId64 "\n",
         (double)in.big_mean100 / 100, in.big_p50, in.big_p90, in.big_max, in.tl_p50,
         in.tl_p90);
  fflush(stdout);

  tokens = malloc(sizeof *tokens * (size_t)p.accounts);
  cursors = mmap(NULL, sizeof *cursors * (size_t)p.accounts, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  page2_readers = malloc(sizeof *page2_readers * (size_t)p.accounts);
  if (!tokens || cursors == MAP_FAILED || !page2_readers) return 1;
  n_accounts = p.accounts;
  for (int i = 0; i < p.accounts; i++) account_token(&p, i, tokens[i], NULL);

  char wbuf[16];
  snprintf(wbuf, sizeof wbuf, "%d", p.threshold);
  const char *extra[] = {"--data-dir", dir,
                         p.threshold != 10000 ? "--fanout-threshold" : NULL, wbuf, NULL};
  bench_server srv;
  int port = bench_server_start(&srv, server, workers, extra);
  g_server = srv.pid;
  int rc = 1;
  if (!port) {
    fprintf(stderr, "bench_feed: tesserad did not start (log in %s)\n", srv.dir);
    goto out;
  }
  static char hb[256];
  for (uint64_t dl = bench_clock_ms() + 10000; bench_clock_ms() < dl; poll(NULL, 0, 20))
    if (bench_http(port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   hb, sizeof hb, NULL) == 200)
      break;
  printf("bench_feed: tesserad with %d workers (default configuration%s); the database"
         " file read into the page cache in %.1f s\n",
         workers, p.threshold != 10000 ? ", --fanout-threshold" : "", preload(dbpath));
  fflush(stdout);
  rc = 0;
  if (!only || !strcmp(only, "read"))
    rc = read_bench(port, procs, nconns, rates, nrates, secs, runs) ? 1 : 0;
  fflush(stdout);
  if (!only || !strcmp(only, "fanout"))
    if (fanout_bench(port, dir, &p, &in, fposts) != 0) rc = 1;
out:
  if (bench_server_stop(&srv)) rc = 1;
  g_server = 0;
  if (restore(dir, &in) != 0) {
    fprintf(stderr, "bench_feed: could not remove the run's posts from %s\n", dir);
    rc = 1;
  }
  return rc;
}
