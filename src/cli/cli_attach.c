/* `tessera chat attach|save` and `tessera attach upload|download`:
 * encrypted attachments (tessera.h, "Attachments"). A file is encrypted
 * here, uploaded as an opaque blob, and its descriptor (blob id and key)
 * sent inside an MLS message; saving finds that message in the state
 * file, downloads the blob and writes the plaintext only once it
 * verified. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/json.h"

/* A descriptor is a secret (it holds the key): wiped after use. */
static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
}

static const char *need_conv(const char *v) {
  if (strlen(v) != TSR_ID_B64_SIZE - 1) die("usage", "%s is not a conversation id", v);
  return v;
}

static uint64_t need_seq(const char *v) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || *end || !*v || v[0] == '-' || n == 0) die("usage", "%s is not a seq", v);
  return (uint64_t)n;
}

void attach_describe(const char *descriptor, size_t n, char *out, size_t cap) {
  tsr_attachment a;
  if (tsr_attachment_decode(descriptor, n, &a) != 0) {
    snprintf(out, cap, "attachment");
    return;
  }
  double size = (double)a.size;
  wipe(&a, sizeof a);
  if (size < 1024)
    snprintf(out, cap, "attachment %.0f B", size);
  else if (size < 1024.0 * 1024)
    snprintf(out, cap, "attachment %.1f KiB", size / 1024);
  else if (size < 1024.0 * 1024 * 1024)
    snprintf(out, cap, "attachment %.1f MiB", size / (1024.0 * 1024));
  else
    snprintf(out, cap, "attachment %.1f GiB", size / (1024.0 * 1024 * 1024));
}

/* Encrypts and uploads the file at path; the descriptor goes into json.
 * Dies on failure. */
static void upload(tsr_client *c, const char *path, char json[TSR_ATTACHMENT_JSON_SIZE]) {
  tsr_attachment a;
  tsr_reply r = {0};
  int rc = tsr_attachment_upload_sync(c, path, &a, &r);
  if (rc == TSR_EIO && !r.done) die("io", "cannot read %s (a regular file)", path);
  if (rc == TSR_ELIMIT && !r.done) die("too_large", "%s is larger than 4 GiB", path);
  if (rc == TSR_ENOMEM) die("local", "not enough memory to encrypt %s", path);
  if (rc) die_call(rc, &r, "attach upload");
  tsr_reply_clear(&r);
  rc = tsr_attachment_encode(&a, json, TSR_ATTACHMENT_JSON_SIZE);
  wipe(&a, sizeof a);
  if (rc < 0) die_call(rc, NULL, "attach upload");
}

/* Downloads the attachment json describes into out_path. Dies on failure
 * (nothing written then). */
static void download(tsr_client *c, const char *json, size_t n, const char *out_path) {
  tsr_attachment a;
  if (tsr_attachment_decode(json, n, &a) != 0)
    die("bad_input", "not an attachment descriptor");
  tsr_reply r = {0};
  int rc = tsr_attachment_download_sync(c, &a, out_path, &r);
  uint64_t size = a.size;
  wipe(&a, sizeof a);
  if (rc == TSR_EIO && !r.done) die("io", "cannot write %s", out_path);
  if (rc == TSR_ENOTFOUND)
    die("not_found", "the server no longer has this attachment (expired or removed)");
  if (rc) die_call(rc, &r, "attach download");
  tsr_reply_clear(&r);
  if (json_out) {
    buf_t b;
    buf_init(&b);
    json_writer w;
    json_writer_init(&w, &b, 2);
    json_write_object_begin(&w);
    json_write_key(&w, "saved");
    json_write_string(&w, out_path);
    json_write_key(&w, "size");
    json_write_u64(&w, size);
    json_write_object_end(&w);
    if (json_writer_finish(&w) == 0) printf("%.*s\n", (int)b.len, (const char *)b.ptr);
    buf_free(&b);
  } else
    printf("saved %s (%llu bytes)\n", out_path, (unsigned long long)size);
}

static bool conversation_here(tsr_client *c, const char *conv) {
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  int rc = tsr_conversations_local(c, &v, &n);
  if (rc) die_call(rc, NULL, "conversations");
  bool found = false;
  for (size_t i = 0; i < n && !found; i++) found = !strcmp(v[i].id, conv);
  free(v);
  return found;
}

/* chat attach CONV FILE [--caption TEXT] */
static int chat_attach(tsr_client *c, int argc, char **argv) {
  const char *caption = NULL;
  const char *pos[2] = {NULL, NULL};
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--caption"))
      caption = optval(argc, argv, &i);
    else if (npos < 2)
      pos[npos++] = argv[i];
    else
      die("usage", "chat attach: unknown argument %s", argv[i]);
  }
  if (npos != 2) die("usage", "chat attach CONVERSATION FILE [--caption TEXT]");
  const char *conv = need_conv(pos[0]);
  tsr_chat *h = NULL;
  int rc = tsr_chat_new(c, NULL, &h);
  if (rc == TSR_ESTATE) die("state", "not logged in");
  if (rc) die_call(rc, NULL, "chat");
  /* Checked before the upload, so no blob is left without its message. */
  if (!conversation_here(c, conv)) die("not_found", "no conversation %s here", conv);
  char json[TSR_ATTACHMENT_JSON_SIZE];
  upload(c, pos[1], json);
  tsr_reply r = {0};
  rc = tsr_send_attachment_sync(h, conv, json, caption, 0, &r);
  wipe(json, sizeof json);
  tsr_chat_free(h);
  if (rc == TSR_EINVAL && !r.done) die("usage", "chat attach: caption too long");
  if (rc) die_call(rc, &r, "chat attach");
  if (json_out) {
    print_body(&r);
  } else {
    size_t cap = r.body_len / 2 + 8;
    json_token *t = malloc(cap * sizeof *t);
    uint64_t seq = 0;
    int i = t && json_parse(r.body, r.body_len, t, cap, NULL) > 0
                ? json_object_get(r.body, t, 0, "seq")
                : -1;
    if (i < 0 || json_get_u64(r.body, t, i, &seq) != 0) seq = 0;
    free(t);
    if (seq)
      printf("sent, seq %llu\n", (unsigned long long)seq);
    else
      printf("sent, seq ?\n");
  }
  tsr_reply_clear(&r);
  return 0;
}

typedef struct {
  uint64_t seq;
  int kind; /* of the message at seq; -1 while not found */
  bool deleted;
  char *descriptor; /* malloc'ed copy */
  size_t descriptor_len;
} finder;

static void on_message(void *arg, const tsr_message *m) {
  finder *f = arg;
  if (m->seq != f->seq || f->kind >= 0) return;
  f->kind = m->kind;
  f->deleted = m->deleted != 0;
  if (m->kind != TSR_KIND_ATTACHMENT || m->deleted) return;
  f->descriptor = malloc(m->descriptor_len + 1);
  if (!f->descriptor) return;
  memcpy(f->descriptor, m->descriptor, m->descriptor_len);
  f->descriptor[m->descriptor_len] = '\0';
  f->descriptor_len = m->descriptor_len;
}

static int find_message(tsr_client *c, const char *conv, finder *f) {
  f->kind = -1;
  return tsr_messages_local(c, conv, f->seq - 1, on_message, f);
}

/* chat save CONV SEQ OUT_PATH */
static int chat_save(tsr_client *c, int argc, char **argv) {
  if (argc != 4) die("usage", "chat save CONVERSATION SEQ OUT_PATH");
  const char *conv = need_conv(argv[1]);
  finder f = {.seq = need_seq(argv[2])};
  int rc = find_message(c, conv, &f);
  if (rc == 0 && f.kind < 0) {
    /* Not here yet: catch up with the server, then look again. */
    tsr_chat *h = NULL;
    rc = tsr_chat_new(c, NULL, &h);
    if (rc == TSR_ESTATE) die("state", "not logged in");
    if (rc) die_call(rc, NULL, "chat");
    tsr_reply r = {0};
    rc = tsr_conversations_refresh_sync(h, &r);
    if (rc) die_call(rc, &r, "conversations");
    tsr_reply_clear(&r);
    tsr_chat_free(h);
    rc = find_message(c, conv, &f);
  }
  if (rc == TSR_ENOTFOUND) die("not_found", "no conversation %s here", conv);
  if (rc) die_call(rc, NULL, "chat save");
  if (f.kind < 0) die("not_found", "no message %s in %s", argv[2], conv);
  if (f.kind != TSR_KIND_ATTACHMENT)
    die("not_attachment", "message %s is not an attachment", argv[2]);
  if (f.deleted) die("not_found", "message %s was deleted", argv[2]);
  if (!f.descriptor) die("local", "out of memory");
  download(c, f.descriptor, f.descriptor_len, argv[3]);
  wipe(f.descriptor, f.descriptor_len);
  free(f.descriptor);
  return 0;
}

int chat_attach_command(tsr_client *c, int argc, char **argv) {
  if (argc < 1) return -1;
  if (!strcmp(argv[0], "attach")) return chat_attach(c, argc, argv);
  if (!strcmp(argv[0], "save")) return chat_save(c, argc, argv);
  return -1;
}

int cmd_attach(tsr_client *c, int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[0], "upload")) {
    char json[TSR_ATTACHMENT_JSON_SIZE];
    upload(c, argv[1], json);
    printf("%s\n", json);
    wipe(json, sizeof json);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[0], "download")) {
    download(c, argv[1], strlen(argv[1]), argv[2]);
    return 0;
  }
  die("usage", "attach upload FILE | attach download DESCRIPTOR OUT");
}
