/* Comment spam filter (src/server/spam.c): quality on the held-out test
 * split and classification throughput.
 *
 *   bench_spam [--data FILE] [--runs R] [--errors N] [--quick]
 *
 * FILE defaults to datasets/comments/test.tsv under the source tree (read from
 * the build's CMakeCache.txt next to this binary's directory), else
 * ./datasets/comments/test.tsv. Reported:
 *  - "hidden" (verdict held or spam, the comment is not shown to others)
 *    and "spam" (verdict spam only), each against the label spam:
 *    precision, recall, F1 and the confusion counts;
 *  - the verdict counts per label;
 *  - the best precision any threshold on the score reaches at recall 0.80,
 *    0.90, 0.95, 0.98 (how well the score ranks, whatever the thresholds);
 *  - throughput: every comment of the file classified in a loop for at
 *    least 0.3 s, comments per second, median of R runs (default 5; one
 *    with --quick) on one core;
 *  - with --errors N, up to N misclassified comments of each kind. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/spam.h"

#include "bench_util.h"

typedef struct {
  int spam;
  spam_input in;
  char *text;
} item;

typedef struct {
  double p;
  int spam;
} scored;

static int scored_cmp(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  return x->spam - y->spam; /* ham first on ties: pessimistic */
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The source tree, from CMAKE_HOME_DIRECTORY in <exe dir>/../CMakeCache.txt. */
static bool source_dir(char *out, size_t cap) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return false;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return false;
  *slash = '\0';
  char path[4200];
  snprintf(path, sizeof path, "%s/../CMakeCache.txt", exe);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char line[4096];
  bool ok = false;
  while (fgets(line, sizeof line, f)) {
    const char *key = "CMAKE_HOME_DIRECTORY:INTERNAL=";
    if (strncmp(line, key, strlen(key)) == 0) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(out, cap, "%s", line + strlen(key));
      ok = true;
      break;
    }
  }
  fclose(f);
  return ok;
}

static item *load(const char *path, size_t *count) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  item *v = NULL;
  size_t n = 0, cap = 0, lcap = 0;
  char *line = NULL;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) > 0) {
    if (line[len - 1] == '\n') line[--len] = '\0';
    char label[8];
    unsigned age, fol, r1m, r1h, same;
    int off = 0;
    if (sscanf(line, "%7[a-z]\t%u\t%u\t%u\t%u\t%u\t%n", label, &age, &fol, &r1m, &r1h,
               &same, &off) != 6 ||
        off == 0) {
      fprintf(stderr, "bench_spam: %s: malformed line %zu\n", path, n + 1);
      exit(1);
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      item *nv = realloc(v, cap * sizeof *v);
      if (!nv) exit(1);
      v = nv;
    }
    item *it = &v[n++];
    it->spam = strcmp(label, "spam") == 0;
    it->text = strdup(line + off);
    if (!it->text) exit(1);
    it->in = (spam_input){.text = it->text,
                          .len = strlen(it->text),
                          .account_age_s = (int64_t)age * 86400,
                          .follows_author = fol != 0,
                          .recent_1m = r1m,
                          .recent_1h = r1h,
                          .same_text_24h = same};
  }
  free(line);
  fclose(f);
  *count = n;
  return v;
}

static void report(const char *name, size_t tp, size_t fp, size_t fn, size_t tn) {
  double p = tp + fp ? (double)tp / (double)(tp + fp) : 1;
  double r = tp + fn ? (double)tp / (double)(tp + fn) : 1;
  double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
  printf("%-7s precision %.4f  recall %.4f  F1 %.4f   (TP %zu FP %zu FN %zu TN %zu)\n",
         name, p, r, f1, tp, fp, fn, tn);
}

int main(int argc, char **argv) {
  char path[4300] = "";
  int runs = 5, errors = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--data") == 0)
      snprintf(path, sizeof path, "%s", argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--runs") == 0)
      runs = atoi(argv[++i]);
    else if (i + 1 < argc && strcmp(argv[i], "--errors") == 0)
      errors = atoi(argv[++i]);
    else if (strcmp(argv[i], "--quick") == 0)
      runs = 1;
    else {
      fprintf(stderr,
              "usage: bench_spam [--data FILE] [--runs R] [--errors N] [--quick]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 99) runs = 5;
  if (!path[0]) {
    char src[4096];
    if (source_dir(src, sizeof src))
      snprintf(path, sizeof path, "%s/datasets/comments/test.tsv", src);
    else
      snprintf(path, sizeof path, "datasets/comments/test.tsv");
  }
  size_t n;
  item *v = load(path, &n);
  if (!v || n == 0) {
    fprintf(stderr, "bench_spam: cannot read %s\n", path);
    return 1;
  }

  size_t verdicts[2][3] = {{0}};
  scored *sc = malloc(n * sizeof *sc);
  if (!sc) return 1;
  size_t shown_fp = 0, shown_fn = 0;
  for (size_t i = 0; i < n; i++) {
    spam_result r;
    spam_classify(&v[i].in, &r);
    verdicts[v[i].spam][r.verdict]++;
    sc[i] = (scored){r.score, v[i].spam};
    bool hidden = r.verdict != SPAM_HAM;
    if (errors && hidden != (bool)v[i].spam) {
      size_t *k = hidden ? &shown_fp : &shown_fn;
      if (*k < (size_t)errors) {
        (*k)++;
        printf("%s  %-4s %.3f %-28s age %lld f %d 1m %u 1h %u same %u  %s\n",
               hidden ? "FP" : "FN", spam_verdict_name(r.verdict), r.score, r.reason,
               (long long)(v[i].in.account_age_s / 86400), v[i].in.follows_author,
               v[i].in.recent_1m, v[i].in.recent_1h, v[i].in.same_text_24h, v[i].text);
      }
    }
  }
  size_t nspam = verdicts[1][0] + verdicts[1][1] + verdicts[1][2];
  size_t nham = n - nspam;
  printf("bench_spam: %s: %zu comments (%zu spam, %zu ham)\n", path, n, nspam, nham);
  printf(
      "verdicts  ham: %zu ham, %zu held, %zu spam;  spam: %zu ham, %zu held, %zu spam\n",
      verdicts[0][0], verdicts[0][1], verdicts[0][2], verdicts[1][0], verdicts[1][1],
      verdicts[1][2]);
  report("hidden", verdicts[1][1] + verdicts[1][2], verdicts[0][1] + verdicts[0][2],
         verdicts[1][0], verdicts[0][0]);
  report("spam", verdicts[1][2], verdicts[0][2], verdicts[1][0] + verdicts[1][1],
         verdicts[0][0] + verdicts[0][1]);

  /* ranking quality, whatever the thresholds: the best precision any
   * threshold on the score reaches at a given recall */
  qsort(sc, n, sizeof *sc, scored_cmp);
  printf("score ranking: precision at recall");
  static const double at[] = {0.80, 0.90, 0.95, 0.98};
  for (size_t a = 0; a < sizeof at / sizeof at[0]; a++) {
    size_t tp = 0, k = 0;
    while (k < n && (double)tp < at[a] * (double)nspam) tp += (size_t)sc[k++].spam;
    printf(" %.2f: %.4f%s", at[a], k ? (double)tp / (double)k : 1,
           a + 1 < 4 ? "," : "\n");
  }
  free(sc);

  double rate[99] = {0};
  volatile double sink = 0;
  for (int r = 0; r < runs; r++) {
    size_t done = 0;
    double t0 = now_s(), t;
    do {
      for (size_t i = 0; i < n; i++) {
        spam_result res;
        spam_classify(&v[i].in, &res);
        sink += res.score;
      }
      done += n;
      t = now_s();
    } while (t - t0 < 0.3);
    rate[r] = (double)done / (t - t0);
  }
  printf("throughput: %.0f comments/s (median of %d runs, one thread)\n",
         bench_median(rate, runs), runs);
  (void)sink;
  for (size_t i = 0; i < n; i++) free(v[i].text);
  free(v);
  return 0;
}
