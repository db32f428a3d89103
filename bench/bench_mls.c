/* MLS benchmarks (make bench). Figures go to docs/benchmarks.md.
 *
 *  1. protect + unprotect of a 100-byte (and a 1 KiB) application message,
 *     next to the floor measured in the same run: one Ed25519 sign + verify
 *     (libsodium) plus one AEAD seal + open of the same size, as a ratio.
 *  2. add-member commit with UpdatePath: create (committer) and process
 *     (another member) at 2, 16, 128, 1024 and 4096 members.
 *  3. Welcome processing at 1024 members.
 *  4. memory of a 1024-member group's state (heap in use, saved size).
 *
 * Every timing is the median of several runs. Usage: bench_mls [--quick]. */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mls/crypto.h"
#include "tessera/mls.h"

#include "bench_util.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void must(int rc, const char *what) {
  if (rc) {
    fprintf(stderr, "bench_mls: %s: %s\n", what, tsr_errname(rc));
    exit(1);
  }
}

static tsr_mls_identity *identity(uint16_t suite, unsigned n) {
  char name[32];
  int len = snprintf(name, sizeof name, "member-%u", n);
  tsr_mls_identity *id;
  must(tsr_mls_identity_new(suite, (const uint8_t *)name, (size_t)len, &id), "identity");
  return id;
}

typedef struct {
  uint8_t *kp, *secret;
  size_t kp_len, secret_len;
} key_package;

static key_package make_kp(tsr_mls_identity *id) {
  key_package k;
  must(tsr_mls_key_package_new(id, 0, &k.kp, &k.kp_len, &k.secret, &k.secret_len), "kp");
  return k;
}

static void free_kp(key_package *k) {
  tsr_mls_free(k->kp, k->kp_len);
  tsr_mls_free(k->secret, k->secret_len);
}

/* A group of n members seen by the members we hold state for: m[0] is
 * the creator (leaf 0) and m[1] the member at leaf 1; the others are only
 * in the tree. With `steady`, one member in each subtree on leaf 0's
 * copath (leaves 1, 2, 4, …) has committed an update, as in a group whose
 * members rotate keys: leaf 0's UpdatePath then encrypts to one node per
 * level. Without it the tree is as a bulk add leaves it (parents blank),
 * and a path must be encrypted to every leaf of each copath subtree. */
typedef struct {
  tsr_mls_identity *id;
  tsr_mls_group *g;
} member;

typedef struct {
  member m[40];
  size_t n;
} group_set;

static bool is_designated(unsigned leaf, bool steady) {
  return leaf == 1 || (steady && (leaf & (leaf - 1)) == 0);
}

static void process_all(group_set *s, size_t skip, const uint8_t *c, size_t c_len) {
  for (size_t i = 0; i < s->n; i++) {
    if (i == skip) continue;
    tsr_mls_event ev;
    must(tsr_mls_group_process(s->m[i].g, c, c_len, &ev), "process");
    tsr_mls_event_clear(&ev);
  }
}

static group_set make_group(uint16_t suite, unsigned members, bool steady) {
  group_set s = {.n = 1};
  s.m[0].id = identity(suite, 0);
  must(tsr_mls_group_create(s.m[0].id, NULL, (const uint8_t *)"bench", 5, &s.m[0].g),
       "create");
  unsigned have = 1;
  while (have < members) {
    unsigned batch = members - have < 256 ? members - have : 256;
    key_package *kps = calloc(batch, sizeof *kps);
    tsr_mls_identity **ids = calloc(batch, sizeof *ids);
    const uint8_t **list = calloc(batch, sizeof *list);
    size_t *lens = calloc(batch, sizeof *lens);
    for (unsigned i = 0; i < batch; i++) {
      ids[i] = identity(suite, have + i);
      kps[i] = make_kp(ids[i]);
      list[i] = kps[i].kp;
      lens[i] = kps[i].kp_len;
    }
    tsr_mls_commit_params p = {
        .add_key_packages = list, .add_key_package_lens = lens, .n_adds = batch};
    uint8_t *c, *w;
    size_t c_len, w_len;
    must(tsr_mls_group_commit(s.m[0].g, &p, &c, &c_len, &w, &w_len), "commit add");
    must(tsr_mls_group_merge_pending(s.m[0].g), "merge");
    process_all(&s, 0, c, c_len);
    for (unsigned i = 0; i < batch; i++) {
      if (is_designated(have + i, steady) && s.n < sizeof s.m / sizeof s.m[0]) {
        member *m = &s.m[s.n++];
        m->id = ids[i];
        const uint8_t *secrets[1] = {kps[i].secret};
        must(tsr_mls_group_join(m->id, NULL, secrets, &kps[i].secret_len, 1, w, w_len,
                                NULL, 0, NULL, &m->g),
             "join");
      } else {
        tsr_mls_identity_free(ids[i]);
      }
      free_kp(&kps[i]);
    }
    tsr_mls_free(c, c_len);
    tsr_mls_free(w, w_len);
    free(kps);
    free(ids);
    free(list);
    free(lens);
    have += batch;
  }
  for (size_t i = steady ? 1 : s.n; i < s.n; i++) {
    uint8_t *c, *w;
    size_t c_len, w_len;
    tsr_mls_commit_params p = {.force_path = 1};
    must(tsr_mls_group_commit(s.m[i].g, &p, &c, &c_len, &w, &w_len), "update");
    must(tsr_mls_group_merge_pending(s.m[i].g), "merge update");
    process_all(&s, i, c, c_len);
    tsr_mls_free(c, c_len);
  }
  return s;
}

/* Commits adding one key package, merges it, returns the Welcome. */
static void add_one(tsr_mls_group *g, const key_package *k, uint8_t **w, size_t *w_len) {
  const uint8_t *list[1] = {k->kp};
  tsr_mls_commit_params p = {
      .add_key_packages = list, .add_key_package_lens = &k->kp_len, .n_adds = 1};
  uint8_t *c;
  size_t c_len;
  must(tsr_mls_group_commit(g, &p, &c, &c_len, w, w_len), "commit add");
  must(tsr_mls_group_merge_pending(g), "merge");
  tsr_mls_free(c, c_len);
}

static void free_group_set(group_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    tsr_mls_group_free(s->m[i].g);
    tsr_mls_identity_free(s->m[i].id);
  }
}

static void bench_protect(uint16_t suite, size_t size, int runs) {
  group_set p = make_group(suite, 2, false);
  tsr_mls_group *a = p.m[0].g, *b = p.m[1].g;
  uint8_t pt[1024];
  memset(pt, 'x', size);
  enum { N = 1000 };
  double *t = calloc((size_t)runs, sizeof *t), *f = calloc((size_t)runs, sizeof *f);
  const mls_suite *s = mls_suite_get(suite);
  mls_sig_key key;
  crypto_sig_generate(&key);
  uint8_t aead_key[32] = {1}, nonce[12] = {2}, ct[sizeof pt + 16], back[sizeof pt],
          sig[64];
  for (int r = 0; r < runs; r++) {
    double t0 = now_us();
    for (int i = 0; i < N; i++) {
      uint8_t *m;
      size_t m_len;
      tsr_mls_event ev;
      must(tsr_mls_group_protect(a, pt, size, NULL, 0, &m, &m_len), "protect");
      must(tsr_mls_group_process(b, m, m_len, &ev), "unprotect");
      tsr_mls_event_clear(&ev);
      tsr_mls_free(m, m_len);
    }
    t[r] = (now_us() - t0) / N;
    t0 = now_us();
    for (int i = 0; i < N; i++) {
      crypto_sig_sign(&key, BYTES(pt, size), sig);
      if (crypto_sig_verify(BYTES(key.pk, 32), BYTES(pt, size), BYTES(sig, 64))) exit(1);
      crypto_aead_seal(s, aead_key, nonce, BYTES_NONE, BYTES(pt, size), ct);
      if (crypto_aead_open(s, aead_key, nonce, BYTES_NONE, BYTES(ct, size + MLS_AEAD_TAG),
                           back))
        exit(1);
    }
    f[r] = (now_us() - t0) / N;
  }
  /* The ratio is taken per run (protect and floor measured back to back),
   * then the median: load from other processes shifts both alike. */
  double *ratio = calloc((size_t)runs, sizeof *ratio);
  for (int r = 0; r < runs; r++) ratio[r] = t[r] / f[r];
  double mr = bench_median(ratio, runs);
  free(ratio);
  double mt = bench_median(t, runs), mf = bench_median(f, runs);
  printf(
      "suite %u  protect+unprotect %4zu B: %.1f us   floor (sign+verify+AEAD seal/open): "
      "%.1f us   ratio %.2f\n",
      suite, size, mt, mf, mr);
  free(t);
  free(f);
  crypto_sig_wipe(&key);
  free_group_set(&p);
}

/* Commit adding one member to a group of n, created by a, processed by b. */
static void bench_commit(uint16_t suite, unsigned n, bool steady, int runs) {
  group_set p = make_group(suite, n, steady);
  uint8_t *sa, *sb;
  size_t sa_len, sb_len;
  must(tsr_mls_group_save(p.m[0].g, &sa, &sa_len), "save a");
  must(tsr_mls_group_save(p.m[1].g, &sb, &sb_len), "save b");
  double *tc = calloc((size_t)runs, sizeof *tc), *tp = calloc((size_t)runs, sizeof *tp);
  for (int r = 0; r < runs; r++) {
    tsr_mls_group *a, *b;
    must(tsr_mls_group_load(sa, sa_len, &a), "load a");
    must(tsr_mls_group_load(sb, sb_len, &b), "load b");
    tsr_mls_identity *id = identity(suite, 2000000 + (unsigned)r);
    key_package k = make_kp(id);
    const uint8_t *list[1] = {k.kp};
    tsr_mls_commit_params cp = {.add_key_packages = list,
                                .add_key_package_lens = &k.kp_len,
                                .n_adds = 1,
                                .force_path = 1};
    uint8_t *c, *w;
    size_t c_len, w_len;
    double t0 = now_us();
    must(tsr_mls_group_commit(a, &cp, &c, &c_len, &w, &w_len), "commit");
    tc[r] = now_us() - t0;
    tsr_mls_event ev;
    t0 = now_us();
    must(tsr_mls_group_process(b, c, c_len, &ev), "process");
    tp[r] = now_us() - t0;
    tsr_mls_event_clear(&ev);
    tsr_mls_free(c, c_len);
    tsr_mls_free(w, w_len);
    free_kp(&k);
    tsr_mls_identity_free(id);
    tsr_mls_group_free(a);
    tsr_mls_group_free(b);
  }
  printf("suite %u  add-member commit with path, %5u members (%s): create %8.3f ms   "
         "process %8.3f ms\n",
         suite, n, steady ? "keys rotated" : "after bulk add",
         bench_median(tc, runs) / 1000, bench_median(tp, runs) / 1000);
  tsr_mls_free(sa, sa_len);
  tsr_mls_free(sb, sb_len);
  free(tc);
  free(tp);
  free_group_set(&p);
}

static void bench_welcome_and_memory(uint16_t suite, unsigned n, int runs) {
  group_set p = make_group(suite, n, true);
  double *tw = calloc((size_t)runs, sizeof *tw);
  for (int r = 0; r < runs; r++) {
    tsr_mls_identity *id = identity(suite, 3000000 + (unsigned)r);
    key_package k = make_kp(id);
    uint8_t *s;
    size_t s_len;
    must(tsr_mls_group_save(p.m[0].g, &s, &s_len), "save");
    tsr_mls_group *a;
    must(tsr_mls_group_load(s, s_len, &a), "load");
    uint8_t *w;
    size_t w_len;
    add_one(a, &k, &w, &w_len);
    const uint8_t *secrets[1] = {k.secret};
    tsr_mls_group *joined;
    double t0 = now_us();
    must(tsr_mls_group_join(id, NULL, secrets, &k.secret_len, 1, w, w_len, NULL, 0, NULL,
                            &joined),
         "welcome");
    tw[r] = now_us() - t0;
    tsr_mls_group_free(joined);
    tsr_mls_group_free(a);
    tsr_mls_free(w, w_len);
    tsr_mls_free(s, s_len);
    free_kp(&k);
    tsr_mls_identity_free(id);
  }
  printf("suite %u  Welcome processing, %u members: %.3f ms\n", suite, n,
         bench_median(tw, runs) / 1000);
  /* Heap held by one member's state: load a saved state and measure. */
  uint8_t *s;
  size_t s_len;
  must(tsr_mls_group_save(p.m[1].g, &s, &s_len), "save");
  struct mallinfo2 before = mallinfo2();
  tsr_mls_group *g;
  must(tsr_mls_group_load(s, s_len, &g), "load");
  struct mallinfo2 after = mallinfo2();
  printf("suite %u  group state, %u members: %.1f KiB heap, %.1f KiB saved\n", suite, n,
         (double)(after.uordblks - before.uordblks) / 1024, (double)s_len / 1024);
  tsr_mls_group_free(g);
  tsr_mls_free(s, s_len);
  free(tw);
  free_group_set(&p);
}

/* Usage: bench_mls [--quick] [protect|commit|welcome] [members] */
int main(int argc, char **argv) {
  int runs = 7;
  const char *only = NULL;
  unsigned members = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      runs = 3;
    else if (argv[i][0] >= '0' && argv[i][0] <= '9')
      members = (unsigned)strtoul(argv[i], NULL, 10);
    else
      only = argv[i];
  }
  must(tsr_mls_init(), "init");
  const uint16_t suites[] = {TSR_MLS_SUITE_1, TSR_MLS_SUITE_3};
  if (!only || !strcmp(only, "protect"))
    for (size_t i = 0; i < 2; i++) {
      bench_protect(suites[i], 100, 3 * runs);
      bench_protect(suites[i], 1024, 3 * runs);
    }
  const unsigned sizes[] = {2, 16, 128, 1024, 4096};
  if (!only || !strcmp(only, "commit")) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      if (!members || members == sizes[i])
        bench_commit(TSR_MLS_SUITE_1, sizes[i], true, runs);
    if (!members) bench_commit(TSR_MLS_SUITE_1, 1024, false, runs);
  }
  if (!only || !strcmp(only, "welcome"))
    bench_welcome_and_memory(TSR_MLS_SUITE_1, members ? members : 1024, runs);
  return 0;
}
