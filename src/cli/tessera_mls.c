/* tessera-mls: one MLS member per state directory, driven from the shell.
 *
 * Every blob read or written is a TLS-serialised MLSMessage. The state
 * directory holds:
 *   identity        the signing key and credential (tsr_mls_identity_save)
 *   kp-<n>.secret   private parts of key packages not yet used
 *   group           the member's group state (tsr_mls_group_save)
 * Files are replaced atomically (write to a temporary name, fsync, rename)
 * so an interrupted command never leaves a torn state behind.
 * See docs/mls-cli.md for the interface. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/mls.h"

enum { MAX_FILE = 64 << 20, MAX_SECRETS = 256 };

static const char *state_dir;

static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void check(int rc, const char *what) {
  if (rc != 0) die("%s: %s (%s)", what, tsr_strerror(rc), tsr_errname(rc));
}

static char *state_path(const char *name) {
  static char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", state_dir, name) >= sizeof path)
    die("state path too long");
  return path;
}

/* Reads a whole file; returns 0, or -1 with errno set. */
static int read_file(const char *path, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  uint8_t *data = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      if (cap > MAX_FILE) {
        free(data);
        fclose(f);
        errno = EFBIG;
        return -1;
      }
      uint8_t *p = realloc(data, cap);
      if (!p) die("out of memory");
      data = p;
    }
    size_t got = fread(data + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(data);
    errno = EIO;
    return -1;
  }
  *out = data;
  *len = n;
  return 0;
}

/* "-" is standard input. */
static void read_input(const char *path, uint8_t **out, size_t *len) {
  if (!strcmp(path, "-")) path = "/dev/stdin";
  if (read_file(path, out, len)) die("cannot read %s: %s", path, strerror(errno));
}

static void write_all(int fd, const char *path, const uint8_t *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("cannot write %s: %s", path, strerror(errno));
    off += (size_t)w;
  }
}

/* State files are replaced atomically: an interrupted command leaves the
 * previous state intact. */
static void write_state(const char *path, const uint8_t *data, size_t len) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) die("cannot write %s: %s", path, strerror(errno));
  write_all(fd, path, data, len);
  if (fsync(fd) || close(fd)) die("cannot write %s: %s", path, strerror(errno));
  if (rename(tmp, path)) die("cannot write %s: %s", path, strerror(errno));
}

/* Outputs the user names are written in place (so a pipe works); "-" is
 * standard output. */
static void write_output(const char *path, const uint8_t *data, size_t len, mode_t mode) {
  if (!strcmp(path, "-")) {
    write_all(STDOUT_FILENO, "standard output", data, len);
    if (fflush(stdout)) die("cannot write standard output");
    return;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) die("cannot write %s: %s", path, strerror(errno));
  write_all(fd, path, data, len);
  if (close(fd)) die("cannot write %s: %s", path, strerror(errno));
}

static void ensure_state_dir(void) {
  if (mkdir(state_dir, 0700) && errno != EEXIST)
    die("cannot create %s: %s", state_dir, strerror(errno));
}

static tsr_mls_identity *load_identity(bool required) {
  uint8_t *data;
  size_t len;
  if (read_file(state_path("identity"), &data, &len)) {
    if (required) die("no identity in state dir (run keypackage first)");
    return NULL;
  }
  tsr_mls_identity *id;
  int rc = tsr_mls_identity_load(data, len, &id);
  tsr_mls_free(data, len);
  check(rc, "loading identity");
  return id;
}

static void save_identity(const tsr_mls_identity *id) {
  uint8_t *data;
  size_t len;
  check(tsr_mls_identity_save(id, &data, &len), "saving identity");
  write_state(state_path("identity"), data, len);
  tsr_mls_free(data, len);
}

/* The identity of this directory: loaded, or created with `name`. */
static tsr_mls_identity *get_identity(int suite, const char *name) {
  tsr_mls_identity *id = load_identity(false);
  if (id) {
    if (suite && tsr_mls_identity_suite(id) != suite)
      die("state dir holds an identity for suite %d", tsr_mls_identity_suite(id));
    return id;
  }
  if (!name) die("no identity in state dir (run keypackage first)");
  if (!suite) die("--suite is required");
  check(tsr_mls_identity_new((uint16_t)suite, (const uint8_t *)name, strlen(name), &id),
        "creating identity");
  ensure_state_dir();
  save_identity(id);
  return id;
}

static tsr_mls_group *load_group(void) {
  uint8_t *data;
  size_t len;
  if (read_file(state_path("group"), &data, &len)) die("no group in state dir");
  tsr_mls_group *g;
  int rc = tsr_mls_group_load(data, len, &g);
  tsr_mls_free(data, len);
  check(rc, "loading group state");
  return g;
}

static void save_group(const tsr_mls_group *g) {
  uint8_t *data;
  size_t len;
  check(tsr_mls_group_save(g, &data, &len), "saving group state");
  ensure_state_dir();
  write_state(state_path("group"), data, len);
  tsr_mls_free(data, len);
}

static bool group_exists(void) { return access(state_path("group"), F_OK) == 0; }

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static uint8_t *parse_hex(const char *s, size_t *len) {
  size_t n = strlen(s);
  if (n % 2) die("hex string has odd length");
  uint8_t *out = malloc(n / 2 + 1);
  if (!out) die("out of memory");
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) die("invalid hex string");
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return out;
}

static void print_hex(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
  printf("\n");
}

static unsigned long parse_uint(const char *s, unsigned long max, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v > max) die("invalid %s: %s", what, s);
  return v;
}

/* Key-package secrets are kept as kp-<n>.secret until a Welcome uses one. */
typedef struct {
  uint8_t *data[MAX_SECRETS];
  size_t len[MAX_SECRETS];
  char name[MAX_SECRETS][64];
  size_t n;
} secrets;

static void load_secrets(secrets *s) {
  s->n = 0;
  DIR *d = opendir(state_dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && s->n < MAX_SECRETS) {
    size_t l = strlen(e->d_name);
    if (strncmp(e->d_name, "kp-", 3) || l < 8 || l >= 64 ||
        strcmp(e->d_name + l - 7, ".secret"))
      continue;
    if (read_file(state_path(e->d_name), &s->data[s->n], &s->len[s->n])) continue;
    memcpy(s->name[s->n], e->d_name, l + 1);
    s->n++;
  }
  closedir(d);
}

static void free_secrets(secrets *s) {
  for (size_t i = 0; i < s->n; i++) tsr_mls_free(s->data[i], s->len[i]);
  s->n = 0;
}

/* Options shared by the commands; each command checks what it needs. */
typedef struct {
  const char *identity, *out, *in, *key_package, *commit_out, *welcome_out;
  const char *welcome, *group_id, *label, *context, *length, *group_info;
} opts;

static const char *need(const char *v, const char *flag) {
  if (!v) die("missing %s", flag);
  return v;
}

static void write_blob(const char *path, uint8_t *data, size_t len) {
  write_output(path, data, len, 0644);
  tsr_mls_free(data, len);
}

static int cmd_keypackage(int suite, const opts *o) {
  need(o->identity, "--identity");
  need(o->out, "--out");
  tsr_mls_identity *id = get_identity(suite, o->identity);
  uint8_t *kp, *secret;
  size_t kp_len, secret_len;
  check(tsr_mls_key_package_new(id, 0, &kp, &kp_len, &secret, &secret_len),
        "creating key package");
  char name[64];
  for (unsigned n = 0;; n++) {
    snprintf(name, sizeof name, "kp-%u.secret", n);
    if (access(state_path(name), F_OK)) break;
  }
  write_state(state_path(name), secret, secret_len);
  tsr_mls_free(secret, secret_len);
  write_blob(o->out, kp, kp_len);
  tsr_mls_identity_free(id);
  return 0;
}

static int cmd_create(int suite, const opts *o) {
  size_t gid_len;
  uint8_t *gid = parse_hex(need(o->group_id, "--group-id"), &gid_len);
  if (group_exists()) die("state dir already holds a group");
  tsr_mls_identity *id = get_identity(suite, o->identity);
  tsr_mls_group *g;
  check(tsr_mls_group_create(id, NULL, gid, gid_len, &g), "creating group");
  save_group(g);
  tsr_mls_group_free(g);
  tsr_mls_identity_free(id);
  free(gid);
  return 0;
}

static int cmd_join(const opts *o) {
  uint8_t *w;
  size_t w_len;
  read_input(need(o->welcome, "--welcome"), &w, &w_len);
  if (group_exists()) die("state dir already holds a group");
  tsr_mls_identity *id = get_identity(0, NULL);
  secrets s;
  load_secrets(&s);
  if (s.n == 0) die("no unused key package in state dir");
  tsr_mls_group *g;
  size_t used = 0;
  check(tsr_mls_group_join(id, NULL, (const uint8_t *const *)s.data, s.len, s.n, w, w_len,
                           NULL, 0, &used, &g),
        "processing welcome");
  save_group(g);
  unlink(state_path(s.name[used])); /* one key package, one use */
  free_secrets(&s);
  tsr_mls_group_free(g);
  tsr_mls_identity_free(id);
  free(w);
  return 0;
}

/* Commits with the given parameters, merges it at once (this tool has no
 * delivery service to wait for) and writes the outputs. */
static void commit_and_merge(tsr_mls_group *g, const tsr_mls_commit_params *p,
                             const opts *o) {
  uint8_t *c, *w;
  size_t c_len, w_len;
  check(tsr_mls_group_commit(g, p, &c, &c_len, &w, &w_len), "creating commit");
  check(tsr_mls_group_merge_pending(g), "merging commit");
  save_group(g);
  write_blob(o->commit_out, c, c_len);
  if (w && o->welcome_out)
    write_blob(o->welcome_out, w, w_len);
  else if (w)
    tsr_mls_free(w, w_len);
}

static int cmd_add(const opts *o) {
  need(o->commit_out, "--commit-out");
  need(o->welcome_out, "--welcome-out");
  uint8_t *kp;
  size_t kp_len;
  read_input(need(o->key_package, "--key-package"), &kp, &kp_len);
  tsr_mls_group *g = load_group();
  const uint8_t *kps[1] = {kp};
  tsr_mls_commit_params p = {
      .add_key_packages = kps, .add_key_package_lens = &kp_len, .n_adds = 1};
  commit_and_merge(g, &p, o);
  tsr_mls_group_free(g);
  free(kp);
  return 0;
}

static int cmd_update(const opts *o) {
  need(o->commit_out, "--commit-out");
  tsr_mls_group *g = load_group();
  tsr_mls_commit_params p = {.force_path = 1};
  commit_and_merge(g, &p, o);
  tsr_mls_group_free(g);
  return 0;
}

static int cmd_remove(const opts *o) {
  need(o->commit_out, "--commit-out");
  const char *name = need(o->identity, "--identity");
  tsr_mls_group *g = load_group();
  uint32_t leaf;
  if (tsr_mls_group_find_member(g, (const uint8_t *)name, strlen(name), &leaf))
    die("no member with identity %s", name);
  if (leaf == tsr_mls_group_own_leaf(g)) die("cannot remove oneself");
  tsr_mls_commit_params p = {.remove_leaves = &leaf, .n_removes = 1};
  commit_and_merge(g, &p, o);
  tsr_mls_group_free(g);
  return 0;
}

static int cmd_process(const opts *o) {
  uint8_t *m;
  size_t m_len;
  read_input(need(o->in, "--in"), &m, &m_len);
  tsr_mls_group *g = load_group();
  tsr_mls_event ev;
  check(tsr_mls_group_process(g, m, m_len, &ev), "processing message");
  if (ev.type == TSR_MLS_EVENT_APPLICATION) {
    fwrite(ev.data, 1, ev.len, stdout);
  }
  if (ev.type == TSR_MLS_EVENT_REMOVED) {
    unlink(state_path("group"));
    fprintf(stderr, "removed from the group\n");
  } else {
    save_group(g);
  }
  tsr_mls_event_clear(&ev);
  tsr_mls_group_free(g);
  free(m);
  return 0;
}

static int cmd_protect(const opts *o) {
  need(o->out, "--out");
  uint8_t *pt;
  size_t pt_len;
  read_input(need(o->in, "--in"), &pt, &pt_len);
  tsr_mls_group *g = load_group();
  uint8_t *m;
  size_t m_len;
  check(tsr_mls_group_protect(g, pt, pt_len, NULL, 0, &m, &m_len), "protecting message");
  save_group(g); /* the sender's ratchet moved: never reuse a generation */
  write_blob(o->out, m, m_len);
  tsr_mls_group_free(g);
  tsr_mls_free(pt, pt_len);
  return 0;
}

static int cmd_unprotect(const opts *o) {
  need(o->out, "--out");
  uint8_t *m;
  size_t m_len;
  read_input(need(o->in, "--in"), &m, &m_len);
  tsr_mls_group *g = load_group();
  tsr_mls_event ev;
  check(tsr_mls_group_process(g, m, m_len, &ev), "unprotecting message");
  if (ev.type != TSR_MLS_EVENT_APPLICATION) {
    tsr_mls_event_clear(&ev);
    die("not an application message");
  }
  save_group(g); /* the consumed key is gone: a replay is refused */
  write_output(o->out, ev.data, ev.len, 0600);
  tsr_mls_event_clear(&ev);
  tsr_mls_group_free(g);
  free(m);
  return 0;
}

static int cmd_export(const opts *o) {
  size_t ctx_len;
  uint8_t *ctx = parse_hex(need(o->context, "--context"), &ctx_len);
  unsigned long n = parse_uint(need(o->length, "--length"), 1u << 16, "--length");
  tsr_mls_group *g = load_group();
  uint8_t *out = malloc(n ? n : 1);
  if (!out) die("out of memory");
  check(tsr_mls_group_export(g, need(o->label, "--label"), ctx, ctx_len, out, n),
        "exporting secret");
  print_hex(out, n);
  tsr_mls_free(out, n);
  tsr_mls_group_free(g);
  free(ctx);
  return 0;
}

static int cmd_epoch_authenticator(void) {
  tsr_mls_group *g = load_group();
  uint8_t out[64];
  size_t n = sizeof out;
  check(tsr_mls_group_epoch_authenticator(g, out, &n), "epoch authenticator");
  print_hex(out, n);
  tsr_mls_group_free(g);
  return 0;
}

static int cmd_epoch(void) {
  tsr_mls_group *g = load_group();
  printf("%llu\n", (unsigned long long)tsr_mls_group_epoch(g));
  tsr_mls_group_free(g);
  return 0;
}

static int cmd_group_info(const opts *o) {
  need(o->out, "--out");
  tsr_mls_group *g = load_group();
  uint8_t *gi;
  size_t gi_len;
  check(tsr_mls_group_info(g, &gi, &gi_len), "creating group info");
  write_blob(o->out, gi, gi_len);
  tsr_mls_group_free(g);
  return 0;
}

static int cmd_external_join(int suite, const opts *o) {
  need(o->commit_out, "--commit-out");
  uint8_t *gi;
  size_t gi_len;
  read_input(need(o->group_info, "--group-info"), &gi, &gi_len);
  if (group_exists()) die("state dir already holds a group");
  tsr_mls_identity *id = get_identity(suite, need(o->identity, "--identity"));
  tsr_mls_group *g;
  uint8_t *c;
  size_t c_len;
  check(tsr_mls_group_external_join(id, NULL, gi, gi_len, &c, &c_len, &g),
        "external join");
  save_group(g);
  write_blob(o->commit_out, c, c_len);
  tsr_mls_group_free(g);
  tsr_mls_identity_free(id);
  free(gi);
  return 0;
}

static _Noreturn void usage(void) {
  fputs("usage: tessera-mls --state DIR [--suite N] COMMAND [options]\n"
        "commands: keypackage, create, add, join, process, update, remove, protect,\n"
        "          unprotect, export, epoch-authenticator, epoch, group-info,\n"
        "          external-join (see docs/mls-cli.md)\n",
        stderr);
  exit(1);
}

int main(int argc, char **argv) {
  opts o = {0};
  int suite = 0;
  const char *cmd = NULL;
  static const struct {
    const char *flag;
    size_t off;
  } flags[] = {
      {"--identity", offsetof(opts, identity)},
      {"--out", offsetof(opts, out)},
      {"--in", offsetof(opts, in)},
      {"--key-package", offsetof(opts, key_package)},
      {"--commit-out", offsetof(opts, commit_out)},
      {"--welcome-out", offsetof(opts, welcome_out)},
      {"--welcome", offsetof(opts, welcome)},
      {"--group-id", offsetof(opts, group_id)},
      {"--label", offsetof(opts, label)},
      {"--context", offsetof(opts, context)},
      {"--length", offsetof(opts, length)},
      {"--group-info", offsetof(opts, group_info)},
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
    if (strncmp(a, "--", 2)) {
      if (cmd) die("unexpected argument %s", a);
      cmd = a;
      continue;
    }
    if (i + 1 >= argc) die("%s needs a value", a);
    const char *v = argv[++i];
    if (!strcmp(a, "--state")) {
      state_dir = v;
    } else if (!strcmp(a, "--suite")) {
      suite = (int)parse_uint(v, 0xffff, "--suite");
    } else {
      size_t k = 0;
      while (k < sizeof flags / sizeof flags[0] && strcmp(flags[k].flag, a)) k++;
      if (k == sizeof flags / sizeof flags[0]) die("unknown option %s", a);
      *(const char **)((char *)&o + flags[k].off) = v;
    }
  }
  if (!state_dir || !cmd) usage();
  if (suite && suite != TSR_MLS_SUITE_1 && suite != TSR_MLS_SUITE_3)
    die("unsupported cipher suite %d (supported: 1, 3)", suite);
  check(tsr_mls_init(), "initialising crypto");

  if (!strcmp(cmd, "keypackage")) return cmd_keypackage(suite, &o);
  if (!strcmp(cmd, "create")) return cmd_create(suite, &o);
  if (!strcmp(cmd, "add")) return cmd_add(&o);
  if (!strcmp(cmd, "join")) return cmd_join(&o);
  if (!strcmp(cmd, "process")) return cmd_process(&o);
  if (!strcmp(cmd, "update")) return cmd_update(&o);
  if (!strcmp(cmd, "remove")) return cmd_remove(&o);
  if (!strcmp(cmd, "protect")) return cmd_protect(&o);
  if (!strcmp(cmd, "unprotect")) return cmd_unprotect(&o);
  if (!strcmp(cmd, "export")) return cmd_export(&o);
  if (!strcmp(cmd, "epoch-authenticator")) return cmd_epoch_authenticator();
  if (!strcmp(cmd, "epoch")) return cmd_epoch();
  if (!strcmp(cmd, "group-info")) return cmd_group_info(&o);
  if (!strcmp(cmd, "external-join")) return cmd_external_join(suite, &o);
  die("unknown command %s", cmd);
}
