/* spam_train: fits the comment spam model (src/server/spam.c) on the
 * training split and writes it as C source.
 *
 *   spam_train [--in datasets/comments/train.tsv] [--out src/server/spam_model.inc]
 *              [--vocab 4000] [--folds 5]
 *
 * Tokens come from spam_analyze, the classifier's own tokeniser, so
 * training and serving see the same tokens. The model:
 *  1. naive Bayes over token presence: tokens in >= 3 comments, the
 *     `vocab` most informative (information gain), each weighted by its
 *     smoothed log-likelihood ratio;
 *  2. a logistic regression (L2, Newton's method) over the token score and
 *     the link, style and behaviour features of spam_features. It is fitted
 *     on out-of-fold token scores, so it learns how far an unseen comment's
 *     token score can be trusted;
 *  3. two thresholds on its probability, chosen on out-of-fold
 *     probabilities of the whole pipeline as the cut with the least cost,
 *     counting a hidden good comment as 7 ("held") or 30 ("spam") shown
 *     spam comments.
 * Folds are contiguous blocks of the file, which is in time order: each
 * fold is a period whose spam campaigns and ham topics the other folds saw
 * less of, so the cross-validation measures drift as well as noise.
 * Only the file given with --in is read. The output is deterministic: the
 * same input gives the same bytes (tests/unit/test_spam.c checks the
 * committed model against it). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/spam.h"

#define MIN_DF 3
#define ALPHA 1.0      /* Laplace smoothing of the token counts */
#define W_CLIP 5.0     /* bound on one token's weight */
#define L2 1.0         /* ridge penalty of the logistic model */
#define COST_HELD 7.0  /* a hidden good comment costs this many shown spam ones */
#define COST_SPAM 30.0 /* the same, for the stronger verdict */

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "spam_train: out of memory\n");
    exit(1);
  }
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fprintf(stderr, "spam_train: out of memory\n");
    exit(1);
  }
  return p;
}

/* ---- token interning ------------------------------------------------------- */

typedef struct {
  char **str;
  size_t n, cap;
  size_t *slot; /* open addressing: index + 1, 0 = empty */
  size_t nslot;
} vocab_t;

static uint64_t hash_str(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3u;
  return h;
}

static size_t intern(vocab_t *v, const char *s, size_t n) {
  if (2 * (v->n + 1) > v->nslot) {
    size_t ns = v->nslot ? v->nslot * 2 : 4096;
    size_t *sl = xmalloc(ns * sizeof *sl);
    memset(sl, 0, ns * sizeof *sl);
    for (size_t i = 0; i < v->n; i++) {
      size_t k = hash_str(v->str[i], strlen(v->str[i])) & (ns - 1);
      while (sl[k]) k = (k + 1) & (ns - 1);
      sl[k] = i + 1;
    }
    free(v->slot);
    v->slot = sl;
    v->nslot = ns;
  }
  size_t k = hash_str(s, n) & (v->nslot - 1);
  while (v->slot[k]) {
    const char *t = v->str[v->slot[k] - 1];
    if (strlen(t) == n && memcmp(t, s, n) == 0) return v->slot[k] - 1;
    k = (k + 1) & (v->nslot - 1);
  }
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4096;
    v->str = xrealloc(v->str, v->cap * sizeof *v->str);
  }
  char *c = xmalloc(n + 1);
  memcpy(c, s, n);
  c[n] = '\0';
  v->str[v->n] = c;
  v->slot[k] = v->n + 1;
  return v->n++;
}

/* ---- the data -------------------------------------------------------------- */

typedef struct {
  int y; /* 1 spam, 0 ham */
  spam_input in;
  spam_content c;
  size_t *tok, ntok; /* distinct token ids */
} row;

typedef struct {
  vocab_t *v;
  row *r;
  size_t cap;
} collect_ctx;

static void collect(void *ctx, const char *tok, size_t len) {
  collect_ctx *cc = ctx;
  if (cc->r->ntok == cc->cap) {
    cc->cap = cc->cap ? cc->cap * 2 : 32;
    cc->r->tok = xrealloc(cc->r->tok, cc->cap * sizeof *cc->r->tok);
  }
  cc->r->tok[cc->r->ntok++] = intern(cc->v, tok, len);
}

static bool parse_u(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > max || s[0] == '-') return false;
  *out = v;
  return true;
}

/* Reads the TSV; exits with a message on a malformed line. */
static row *load(const char *path, vocab_t *v, size_t *nrows) {
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    exit(1);
  }
  row *rows = NULL;
  size_t n = 0, cap = 0, lineno = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) >= 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    char *field[7];
    int nf = 0;
    char *p = line;
    field[nf++] = p;
    while (nf < 7 && (p = strchr(p, '\t'))) {
      *p++ = '\0';
      field[nf++] = p;
    }
    unsigned long age, fol, r1m, r1h, same;
    if (nf != 7 || (strcmp(field[0], "ham") && strcmp(field[0], "spam")) ||
        !parse_u(field[1], 100000, &age) || !parse_u(field[2], 1, &fol) ||
        !parse_u(field[3], UINT32_MAX, &r1m) || !parse_u(field[4], UINT32_MAX, &r1h) ||
        !parse_u(field[5], UINT32_MAX, &same)) {
      fprintf(stderr, "%s:%zu: malformed line\n", path, lineno);
      exit(1);
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      rows = xrealloc(rows, cap * sizeof *rows);
    }
    row *r = &rows[n++];
    memset(r, 0, sizeof *r);
    r->y = field[0][0] == 's';
    r->in.account_age_s = (int64_t)age * 86400;
    r->in.follows_author = fol;
    r->in.recent_1m = (uint32_t)r1m;
    r->in.recent_1h = (uint32_t)r1h;
    r->in.same_text_24h = (uint32_t)same;
    collect_ctx cc = {v, r, 0};
    spam_analyze(field[6], strlen(field[6]), collect, &cc, &r->c);
  }
  free(line);
  fclose(f);
  *nrows = n;
  return rows;
}

/* ---- naive Bayes --------------------------------------------------------------- */

static double entropy(double p) {
  if (p <= 0 || p >= 1) return 0;
  return -p * log(p) - (1 - p) * log(1 - p);
}

typedef struct {
  size_t id;
  double ig;
  const char *s;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->ig != y->ig) return x->ig > y->ig ? -1 : 1;
  return strcmp(x->s, y->s);
}

/* Fits the token weights w[ntok] (0 = not in the vocabulary) on the rows
 * with use[i] set; returns the number of tokens kept. */
static size_t nb_fit(const row *rows, size_t n, const bool *use, const vocab_t *v,
                     size_t vocab, double *w) {
  size_t nt = v->n;
  unsigned *ds = xmalloc(nt * sizeof *ds), *dh = xmalloc(nt * sizeof *dh);
  memset(ds, 0, nt * sizeof *ds);
  memset(dh, 0, nt * sizeof *dh);
  double S = 0, H = 0;
  for (size_t i = 0; i < n; i++) {
    if (!use[i]) continue;
    if (rows[i].y)
      S++;
    else
      H++;
    for (size_t k = 0; k < rows[i].ntok; k++) (rows[i].y ? ds : dh)[rows[i].tok[k]]++;
  }
  cand *c = xmalloc(nt * sizeof *c);
  size_t nc = 0;
  double N = S + H, hy = entropy(S / N);
  for (size_t t = 0; t < nt; t++) {
    w[t] = 0;
    double s = ds[t], h = dh[t];
    if (s + h < MIN_DF) continue;
    double pt = (s + h) / N;
    double rest = N - s - h;
    double ig = hy - pt * entropy(s / (s + h)) -
                (rest > 0 ? (1 - pt) * entropy((S - s) / rest) : 0);
    c[nc++] = (cand){t, ig, v->str[t]};
  }
  qsort(c, nc, sizeof *c, cand_cmp);
  if (nc > vocab) nc = vocab;
  for (size_t k = 0; k < nc; k++) {
    size_t t = c[k].id;
    double lw =
        log((ds[t] + ALPHA) / (S + 2 * ALPHA)) - log((dh[t] + ALPHA) / (H + 2 * ALPHA));
    w[t] = lw > W_CLIP ? W_CLIP : lw < -W_CLIP ? -W_CLIP : lw;
  }
  free(c);
  free(ds);
  free(dh);
  return nc;
}

static double nb_score(const row *r, const double *w) {
  double s = 0;
  for (size_t k = 0; k < r->ntok; k++) s += w[r->tok[k]];
  return s;
}

/* ---- logistic regression ------------------------------------------------------- */

#define F SPAM_NFEAT

/* Solves A x = b in place (A symmetric positive definite, Cholesky). */
static void solve_spd(double a[F][F], double b[F]) {
  for (int j = 0; j < F; j++) {
    double d = a[j][j];
    for (int k = 0; k < j; k++) d -= a[j][k] * a[j][k];
    d = sqrt(d > 1e-12 ? d : 1e-12);
    a[j][j] = d;
    for (int i = j + 1; i < F; i++) {
      double s = a[i][j];
      for (int k = 0; k < j; k++) s -= a[i][k] * a[j][k];
      a[i][j] = s / d;
    }
  }
  for (int i = 0; i < F; i++) {
    double s = b[i];
    for (int k = 0; k < i; k++) s -= a[i][k] * b[k];
    b[i] = s / a[i][i];
  }
  for (int i = F - 1; i >= 0; i--) {
    double s = b[i];
    for (int k = i + 1; k < F; k++) s -= a[k][i] * b[k];
    b[i] = s / a[i][i];
  }
}

static double sigmoid(double z) {
  if (z > 40) z = 40;
  if (z < -40) z = -40;
  return 1 / (1 + exp(-z));
}

static double dot(const double *w, const double *x) {
  double z = 0;
  for (int f = 0; f < F; f++) z += w[f] * x[f];
  return z;
}

static void lr_fit(const double (*x)[F], const int *y, const bool *use, size_t n,
                   double *w) {
  memset(w, 0, F * sizeof *w);
  for (int it = 0; it < 100; it++) {
    double g[F] = {0}, h[F][F];
    memset(h, 0, sizeof h);
    for (size_t i = 0; i < n; i++) {
      if (!use[i]) continue;
      double p = sigmoid(dot(w, x[i])), r = p * (1 - p);
      for (int a = 0; a < F; a++) {
        g[a] += (p - y[i]) * x[i][a];
        for (int b = 0; b <= a; b++) h[a][b] += r * x[i][a] * x[i][b];
      }
    }
    for (int a = 0; a < F; a++) {
      for (int b = 0; b < a; b++) h[b][a] = h[a][b];
      if (a != SPAM_F_BIAS) {
        g[a] += L2 * w[a];
        h[a][a] += L2;
      } else {
        h[a][a] += 1e-9;
      }
    }
    solve_spd(h, g);
    double step = 0;
    for (int a = 0; a < F; a++) {
      w[a] -= g[a];
      step = fabs(g[a]) > step ? fabs(g[a]) : step;
    }
    if (step < 1e-10) break;
  }
}

/* ---- thresholds ------------------------------------------------------------------ */

typedef struct {
  double p;
  int y;
} scored;

static int scored_cmp(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  return x->y - y->y; /* ham first on ties: pessimistic */
}

/* The threshold on s (sorted by falling p) that minimises cost * FP + FN:
 * hiding a good comment counts `cost` times as much as showing a spam one.
 * Cuts fall only between distinct scores, halfway. */
static double pick_threshold(const scored *s, size_t n, double cost) {
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) pos += (size_t)s[i].y;
  size_t tp = 0, fp = 0, best = 0;
  double best_cost = (double)pos; /* nothing hidden */
  for (size_t k = 0; k < n; k++) {
    if (s[k].y)
      tp++;
    else
      fp++;
    if (k + 1 < n && s[k + 1].p == s[k].p) continue;
    double c = cost * (double)fp + (double)(pos - tp);
    if (c < best_cost) {
      best_cost = c;
      best = k + 1;
    }
  }
  if (best == 0) return 1.0;
  if (best == n) return s[n - 1].p;
  return (s[best - 1].p + s[best].p) / 2;
}

typedef struct {
  size_t tp, fp, fn;
} counts;

static void count(const scored *s, size_t n, double t, counts *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < n; i++) {
    bool pos = s[i].p >= t;
    if (pos && s[i].y)
      c->tp++;
    else if (pos)
      c->fp++;
    else if (s[i].y)
      c->fn++;
  }
}

static double prec(const counts *c) {
  return c->tp + c->fp ? (double)c->tp / (double)(c->tp + c->fp) : 1;
}
static double rec(const counts *c) {
  return c->tp + c->fn ? (double)c->tp / (double)(c->tp + c->fn) : 1;
}

/* ---- output ------------------------------------------------------------------------ */

static const char *const FEAT_NAMES[] = {
    "bias",        "nb",          "link",     "code_url",      "mention",
    "obfuscated",  "money_phone", "emoji",    "caps",          "length",
    "elongated",   "age",         "new",      "follows",       "rate_1m",
    "rate_1h",     "repeat",      "link_new", "link_stranger", "repeat_stranger",
    "nb_stranger", "nb_trusted",  "burst",    "flood",         "copies"};
_Static_assert(sizeof FEAT_NAMES / sizeof FEAT_NAMES[0] == F, "one name per feature");

typedef struct {
  const char *s;
  double w;
} outtok;

static int outtok_cmp(const void *a, const void *b) {
  return strcmp(((const outtok *)a)->s, ((const outtok *)b)->s);
}

static void put_cstr(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7F || *p == '?')
      fprintf(f, "\\%03o", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* Folds are contiguous blocks of rows: the file is in time order, so each
 * fold is a period whose campaigns the other folds saw less of. */
static size_t fold_of(size_t i, size_t n, size_t folds) { return i * folds / n; }

int main(int argc, char **argv) {
  const char *in = "datasets/comments/train.tsv", *out = "src/server/spam_model.inc";
  unsigned long vocab = 4000, folds = 5;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--in") == 0)
      in = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--out") == 0)
      out = argv[++i];
    else if (i + 1 < argc && strcmp(argv[i], "--vocab") == 0 &&
             parse_u(argv[i + 1], 5000, &vocab) && vocab > 0)
      i++;
    else if (i + 1 < argc && strcmp(argv[i], "--folds") == 0 &&
             parse_u(argv[i + 1], 20, &folds) && folds >= 2)
      i++;
    else {
      fprintf(stderr, "usage: spam_train [--in TSV] [--out INC] [--vocab N<=5000] "
                      "[--folds K]\n");
      return 2;
    }
  }
  vocab_t v = {0};
  size_t n;
  row *rows = load(in, &v, &n);
  if (n < folds * 10) {
    fprintf(stderr, "spam_train: %s: too few comments (%zu)\n", in, n);
    return 1;
  }
  size_t nspam = 0;
  for (size_t i = 0; i < n; i++) nspam += (size_t)rows[i].y;

  bool *use = xmalloc(n * sizeof *use);
  double *w_tok = xmalloc(v.n * sizeof *w_tok);
  double(*x)[F] = xmalloc(n * sizeof *x);
  int *y = xmalloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) y[i] = rows[i].y;

  /* 1. out-of-fold token scores -> features */
  for (size_t k = 0; k < folds; k++) {
    for (size_t i = 0; i < n; i++) use[i] = fold_of(i, n, folds) != k;
    nb_fit(rows, n, use, &v, vocab, w_tok);
    for (size_t i = 0; i < n; i++)
      if (!use[i])
        spam_features(&rows[i].in, &rows[i].c, nb_score(&rows[i], w_tok), x[i]);
  }
  /* 2. out-of-fold probabilities of the logistic model -> thresholds */
  scored *oof = xmalloc(n * sizeof *oof);
  double w[F];
  for (size_t k = 0; k < folds; k++) {
    for (size_t i = 0; i < n; i++) use[i] = fold_of(i, n, folds) != k;
    lr_fit((const double(*)[F])x, y, use, n, w);
    for (size_t i = 0; i < n; i++)
      if (!use[i]) oof[i] = (scored){sigmoid(dot(w, x[i])), y[i]};
  }
  qsort(oof, n, sizeof *oof, scored_cmp);
  double t_held = pick_threshold(oof, n, COST_HELD);
  double t_spam = pick_threshold(oof, n, COST_SPAM);
  if (t_spam < t_held) t_spam = t_held;
  counts ch, cs;
  count(oof, n, t_held, &ch);
  count(oof, n, t_spam, &cs);

  /* 3. the final model on every row */
  for (size_t i = 0; i < n; i++) use[i] = true;
  lr_fit((const double(*)[F])x, y, use, n, w);
  size_t kept = nb_fit(rows, n, use, &v, vocab, w_tok);

  outtok *ot = xmalloc((kept ? kept : 1) * sizeof *ot);
  size_t no = 0;
  for (size_t t = 0; t < v.n; t++)
    if (w_tok[t] != 0) ot[no++] = (outtok){v.str[t], w_tok[t]};
  qsort(ot, no, sizeof *ot, outtok_cmp);

  FILE *f = fopen(out, "w");
  if (!f) {
    perror(out);
    return 1;
  }
  fprintf(
      f,
      "/* Generated by tools/spam_train from datasets/comments/train.tsv: do not edit.\n"
      " * %zu comments (%zu spam), %zu distinct tokens, %zu kept (in >= %d comments,\n"
      " * most informative first). %lu-fold cross-validation on the training split:\n"
      " *   hidden (held or spam): precision %.4f recall %.4f\n"
      " *   spam:                  precision %.4f recall %.4f */\n",
      n, nspam, v.n, no, MIN_DF, folds, prec(&ch), rec(&ch), prec(&cs), rec(&cs));
  fprintf(f, "#define SPAM_MODEL_NTOK %zu\n", no);
  fprintf(f, "#define SPAM_MODEL_T_HELD %.6f\n", t_held);
  fprintf(f, "#define SPAM_MODEL_T_SPAM %.6f\n", t_spam);
  fprintf(f, "static const double spam_model_w[SPAM_NFEAT] = {\n");
  for (int a = 0; a < F; a++) fprintf(f, "    %.6f, /* %s */\n", w[a], FEAT_NAMES[a]);
  fprintf(f, "};\nstatic const model_tok spam_model_tok[] = {\n");
  for (size_t k = 0; k < no; k++) {
    fprintf(f, "    {");
    put_cstr(f, ot[k].s);
    fprintf(f, ", %.4ff},\n", ot[k].w);
  }
  if (!no) fprintf(f, "    {\"\", 0.0f},\n");
  fprintf(f, "};\n");
  if (fclose(f) != 0) {
    perror(out);
    return 1;
  }
  fprintf(stderr,
          "spam_train: %zu comments, %zu tokens kept; CV hidden P %.4f R %.4f (t %.4f), "
          "spam P %.4f R %.4f (t %.4f)\n",
          n, no, prec(&ch), rec(&ch), t_held, prec(&cs), rec(&cs), t_spam);

  free(ot);
  free(oof);
  free(y);
  free(x);
  free(w_tok);
  free(use);
  for (size_t i = 0; i < n; i++) free(rows[i].tok);
  free(rows);
  for (size_t i = 0; i < v.n; i++) free(v.str[i]);
  free(v.str);
  free(v.slot);
  return 0;
}
