/* tessera chat: the interactive mode. A numbered conversation list and one
 * open conversation, both live, on stdin and stdout: line-oriented (no
 * curses), so that it works the same on a terminal, over ssh and with
 * piped input; ANSI colour when stdout is a terminal and NO_COLOR is unset.
 *
 * One poll(2) loop drives stdin, the client's HTTP connection and the
 * chat's realtime session together (as tsr_chat_run does), so typing,
 * pushes, sends and reconnects all proceed at once. Everything runs on
 * this thread: the library's callbacks print and update the tui struct.
 *
 * Text from the network is never written raw: render_text turns invalid
 * UTF-8, control characters and bidirectional overrides into U+FFFD, so
 * that a message cannot move the cursor, recolour the screen or pass for
 * another line. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/json.h"
#include "proto/utf8.h"
#include "tessera/tessera.h"

#define TEXT_MAX 60000     /* tsr_send_text's limit, in bytes */
#define HISTORY 20         /* messages shown when a conversation opens */
#define PREVIEW_CHARS 48   /* characters of a last-message preview */
#define PREVIEW_BYTES 256  /* kept of its text (cut on a character) */
#define QUIT_WAIT_MS 10000 /* how long quitting waits for answers in flight */
#define WHO_SIZE 12        /* "me" or the first 8 characters of an id */
#define MAX_MEMBERS 63     /* of a new conversation (the server's limit) */
#define HISTORY_WINDOW 400 /* seqs looked at first for history and previews */
#define READY_MS 3000      /* longest wait for the first refresh before input */

#define C_DIM "\033[2m"
#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_CYAN "\033[36m"
#define C_RESET "\033[0m"

/* One conversation of the list. Entries keep their place (and so their
 * number) for the whole run; new ones are appended. unread counts the
 * messages of others that arrived during this run and were not shown;
 * seen is the last seq shown (at start: the last one stored). */
typedef struct {
  tsr_conversation_info info;
  uint64_t seen;
  unsigned unread;
  char who[WHO_SIZE]; /* sender of the last message, "" when none */
  char *preview;      /* its text, at most PREVIEW_BYTES, NUL-terminated */
  bool changed;       /* to be printed again in the list view */
} entry;

/* The whole state of a run. open is an index into v or -1 (list view). */
typedef struct {
  tsr_client *c;
  tsr_chat *h;
  char me[TSR_ID_B64_SIZE]; /* this account's id */
  entry *v;
  size_t n;
  long open;
  char want_open[64]; /* `chat open CONV` not known here yet: after the refresh */
  bool color;
  int ws_state;     /* last seen tsr_ws_state */
  bool was_online;  /* connected at least once */
  size_t pending;   /* tsr_chat_pending at the last look */
  unsigned busy;    /* sends, answers and creations not answered yet */
  unsigned send_no; /* number of the last send, shown to match its answer */
  bool quit;
  bool closing; /* the chat is being freed: "cancelled" is expected */
  uint64_t quit_deadline;
  bool eof;
  /* Input is read once the first refresh answered (or after READY_MS), so
   * that piped commands see the conversations waiting on the server. */
  bool ready;
  uint64_t ready_by;
  char line[TEXT_MAX + 2]; /* a line being read: text, maybe '\r', NUL */
  size_t line_len;
  size_t overlong; /* length of a line past the limit (0: none) */
} tui;

static volatile sig_atomic_t interrupts;

static void on_interrupt(int sig) {
  (void)sig;
  if (interrupts < 2) interrupts++;
}

/* --- output ----------------------------------------------------------------- */

static void color(const tui *t, const char *code) {
  if (t->color) fputs(code, stdout);
}

/* One line of the program's own: prefix "-- " (news) or "!! " (refusals
 * and errors). */
static void __attribute__((format(printf, 3, 4)))
say(const tui *t, bool error, const char *fmt, ...) {
  color(t, error ? C_RED : C_YELLOW);
  fputs(error ? "!! " : "-- ", stdout);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  color(t, C_RESET);
  fputc('\n', stdout);
}

/* A result that failed: the server's code and message, or the local ones. */
static void say_result(const tui *t, const char *what, const tsr_result *res) {
  say(t, true, "%s: %s: %s", what, res->code[0] ? res->code : tsr_errname(res->err),
      res->message[0] ? res->message : tsr_strerror(res->err));
}

/* Characters that must not reach the terminal as they are: controls
 * (C0 but tab and newline, DEL, C1), the line and paragraph separators and
 * the bidirectional embeddings, overrides and isolates (which can make a
 * line read in another order than it was written). */
static bool unsafe(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Writes text for the terminal: invalid UTF-8 and unsafe characters as
 * U+FFFD, a tab as a space, CR dropped, a newline as a newline followed by
 * indent (or as a space when indent is NULL). With max > 0, at most max
 * characters, then "…". */
static void render_text(const char *s, size_t len, size_t max, const char *indent) {
  size_t chars = 0;
  for (size_t i = 0; i < len;) {
    unsigned char b = (unsigned char)s[i];
    size_t k = b < 0x80                 ? 1
               : b >= 0xc2 && b <= 0xdf ? 2
               : b >= 0xe0 && b <= 0xef ? 3
               : b >= 0xf0 && b <= 0xf4 ? 4
                                        : 0;
    uint32_t cp = 0xfffd;
    if (k == 0 || i + k > len || !utf8_valid((const uint8_t *)s + i, k)) {
      k = 1;
    } else if (k == 1) {
      cp = b;
    } else {
      cp = b & (0x7f >> k);
      for (size_t j = 1; j < k; j++) cp = cp << 6 | ((unsigned char)s[i + j] & 0x3f);
    }
    if (max && chars == max) {
      fputs("…", stdout);
      return;
    }
    if (cp == '\r') {
      i += k;
      continue;
    }
    if (cp == '\n') {
      if (indent) {
        fputc('\n', stdout);
        fputs(indent, stdout);
      } else {
        fputc(' ', stdout);
      }
    } else if (cp == '\t') {
      fputc(' ', stdout);
    } else if (unsafe(cp) || cp == 0xfffd) {
      fputs("\xef\xbf\xbd", stdout);
    } else {
      fwrite(s + i, 1, k, stdout);
    }
    chars++;
    i += k;
  }
}

/* "me" for this account (any of its devices), else the first 8
 * characters of the sender's account id. */
static void sender_name(const tui *t, const tsr_message *m, char out[WHO_SIZE]) {
  if (m->own || !strcmp(m->sender_account, t->me))
    snprintf(out, WHO_SIZE, "me");
  else if (m->sender_account[0])
    snprintf(out, WHO_SIZE, "%.8s", m->sender_account);
  else
    snprintf(out, WHO_SIZE, "?");
}

/* HH:MM today, else the date too; local time. */
static void short_time(int64_t ms, char *out, size_t cap) {
  time_t when = (time_t)(ms / 1000), now = time(NULL);
  struct tm a, b;
  if (!localtime_r(&when, &a) || !localtime_r(&now, &b)) {
    snprintf(out, cap, "?");
    return;
  }
  bool today = a.tm_year == b.tm_year && a.tm_yday == b.tm_yday;
  if (strftime(out, cap, today ? "%H:%M" : "%Y-%m-%d %H:%M", &a) == 0)
    snprintf(out, cap, "?");
}

/* The one place a message is drawn: "TIME #SEQ WHO: TEXT", lines of the
 * text after the first indented. */
static void render_message(const tui *t, const tsr_message *m) {
  char when[32], who[WHO_SIZE];
  short_time(m->at_ms, when, sizeof when);
  sender_name(t, m, who);
  color(t, C_DIM);
  printf("%s #%llu ", when, (unsigned long long)m->seq);
  color(t, C_RESET);
  color(t, strcmp(who, "me") ? C_CYAN C_BOLD : C_GREEN C_BOLD);
  printf("%s:", who);
  color(t, C_RESET);
  fputc(' ', stdout);
  if (m->deleted) {
    color(t, C_DIM);
    printf("message deleted");
    color(t, C_RESET);
  } else {
    if (m->kind == TSR_KIND_ATTACHMENT) {
      char what[64];
      attach_describe(m->descriptor, m->descriptor_len, what, sizeof what);
      printf("[%s] ", what);
    }
    if (m->reply_to) printf("(to #%llu) ", (unsigned long long)m->reply_to);
    render_text(m->text, m->text_len, 0, "    ");
    if (m->edited_at_ms) printf(" (edited)");
  }
  fputc('\n', stdout);
}

/* Edits, deletions, reactions, titles and typing of the open conversation,
 * one line each (receipts are not drawn: `chat read` shows them). */
static void render_update(const tui *t, const tsr_message *m) {
  char who[WHO_SIZE];
  sender_name(t, m, who);
  color(t, C_DIM);
  switch (m->kind) {
  case TSR_KIND_EDIT:
    printf("-- %s edited #%llu: ", who, (unsigned long long)m->target);
    render_text(m->text, m->text_len, 0, "    ");
    break;
  case TSR_KIND_DELETE:
    printf("-- %s deleted #%llu", who, (unsigned long long)m->target);
    break;
  case TSR_KIND_REACTION:
    printf("-- %s %s ", who, m->remove ? "took back" : "reacted");
    render_text(m->emoji, m->emoji_len, 0, NULL);
    printf(" to #%llu", (unsigned long long)m->target);
    break;
  case TSR_KIND_TITLE:
    printf("-- %s named the group: ", who);
    render_text(m->text, m->text_len, 0, NULL);
    break;
  case TSR_KIND_TYPING:
    printf("-- %s %s", who, m->typing ? "is typing…" : "stopped typing");
    break;
  default: color(t, C_RESET); return;
  }
  color(t, C_RESET);
  fputc('\n', stdout);
}

static long entry_index(const tui *t, const char *conv) {
  for (size_t i = 0; i < t->n; i++)
    if (!strcmp(t->v[i].info.id, conv)) return (long)i;
  return -1;
}

/* "[N] APP KIND STATE  U unread  K to send  WHO: preview" */
static void render_entry(const tui *t, size_t i) {
  const entry *e = &t->v[i];
  color(t, C_BOLD);
  printf("[%zu]", i + 1);
  color(t, C_RESET);
  printf(" %s %s %s", e->info.app, e->info.kind, e->info.state);
  if (!strcmp(e->info.state, "request")) printf(" (/accept or /decline)");
  if (e->unread) {
    color(t, C_GREEN C_BOLD);
    printf("  %u unread", e->unread);
    color(t, C_RESET);
  }
  if (e->info.outbox) printf("  %llu to send", (unsigned long long)e->info.outbox);
  if (e->preview) {
    printf("  %s: ", e->who);
    render_text(e->preview, strlen(e->preview), PREVIEW_CHARS, NULL);
  } else {
    printf("  (no messages)");
  }
  fputc('\n', stdout);
}

static void render_list(tui *t) {
  if (t->n == 0)
    say(t, false, "no conversations yet: /new APP WHO:APP starts one (/help)");
  for (size_t i = 0; i < t->n; i++) {
    render_entry(t, i);
    t->v[i].changed = false;
  }
}

/* --- the list ------------------------------------------------------------- */

static void set_preview(const tui *t, entry *e, const tsr_message *m) {
  size_t len =
      utf8_valid_prefix((const uint8_t *)m->text,
                        m->text_len < PREVIEW_BYTES ? m->text_len : PREVIEW_BYTES);
  char *p = malloc(len + 1);
  if (!p) return; /* the old preview stays */
  memcpy(p, m->text, len);
  p[len] = '\0';
  free(e->preview);
  e->preview = p;
  sender_name(t, m, e->who);
}

typedef struct {
  const tui *t;
  entry *e;
  size_t count; /* messages seen by the pass */
  size_t skip;  /* history: messages not to draw */
} pass;

static void preview_each(void *arg, const tsr_message *m) {
  pass *p = arg;
  p->count++;
  set_preview(p->t, p->e, m);
}

/* The last stored message as preview: the recent seqs first, all of them
 * when nothing is there (seqs count commits too). */
static void load_preview(tui *t, entry *e) {
  uint64_t last = e->info.last_seq;
  pass p = {t, e, 0, 0};
  uint64_t after = last > HISTORY_WINDOW ? last - HISTORY_WINDOW : 0;
  tsr_messages_local(t->c, e->info.id, after, preview_each, &p);
  if (p.count == 0 && after > 0)
    tsr_messages_local(t->c, e->info.id, 0, preview_each, &p);
}

/* Reads the list from the state file: known entries are updated in place
 * (changed when their state or outbox moved), new ones appended. */
static int reload(tui *t) {
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  int rc = tsr_conversations_local(t->c, &v, &n);
  if (rc) {
    say(t, true, "reading the conversations: %s", tsr_strerror(rc));
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    long k = entry_index(t, v[i].id);
    if (k >= 0) {
      entry *e = &t->v[k];
      if (strcmp(e->info.state, v[i].state) || e->info.outbox != v[i].outbox)
        e->changed = true;
      e->info = v[i];
      continue;
    }
    entry *nv = realloc(t->v, (t->n + 1) * sizeof *nv);
    if (!nv) {
      rc = TSR_ENOMEM;
      break;
    }
    t->v = nv;
    entry *e = &t->v[t->n++];
    *e = (entry){.info = v[i], .seen = v[i].last_seq, .changed = true};
    load_preview(t, e);
  }
  free(v);
  if (rc) say(t, true, "reading the conversations: %s", tsr_strerror(rc));
  return rc;
}

/* In the list view, entries that changed are drawn again; in a
 * conversation, only those whose state moved (other news come as
 * one-line notices when they happen). */
static void show_changes(tui *t) {
  for (size_t i = 0; i < t->n; i++) {
    if (!t->v[i].changed) continue;
    if (t->open < 0) render_entry(t, i);
    t->v[i].changed = false;
  }
}

/* --- conversation view ---------------------------------------------------- */

static void history_each(void *arg, const tsr_message *m) {
  pass *p = arg;
  if (p->count++ >= p->skip) {
    render_message(p->t, m);
    if (m->seq > p->e->seen) p->e->seen = m->seq;
  }
}

static void count_each(void *arg, const tsr_message *m) {
  (void)m;
  ((pass *)arg)->count++;
}

/* The last HISTORY messages of e, oldest first. */
static void render_history(tui *t, entry *e) {
  uint64_t last = e->info.last_seq;
  uint64_t after = last > HISTORY_WINDOW ? last - HISTORY_WINDOW : 0;
  pass p = {t, e, 0, 0};
  int rc = tsr_messages_local(t->c, e->info.id, after, count_each, &p);
  if (rc == 0 && p.count < HISTORY && after > 0) {
    after = 0;
    p.count = 0;
    rc = tsr_messages_local(t->c, e->info.id, 0, count_each, &p);
  }
  if (rc == 0) {
    p.skip = p.count > HISTORY ? p.count - HISTORY : 0;
    if (p.count == 0) say(t, false, "no messages yet");
    p.count = 0;
    rc = tsr_messages_local(t->c, e->info.id, after, history_each, &p);
  }
  if (rc) say(t, true, "reading the messages: %s", tsr_strerror(rc));
}

static void open_entry(tui *t, size_t i) {
  entry *e = &t->v[i];
  t->open = (long)i;
  color(t, C_BOLD);
  printf("== [%zu] %s %s %s  %s ==\n", i + 1, e->info.app, e->info.kind, e->info.state,
         e->info.id);
  color(t, C_RESET);
  render_history(t, e);
  e->unread = 0;
  e->changed = false;
  if (!strcmp(e->info.state, "request"))
    say(t, false, "a message request: /accept to answer, /decline to refuse");
  else if (strcmp(e->info.state, "active"))
    say(t, false, "this conversation is %s", e->info.state);
}

/* N (1-based, as listed), a whole id, or an id's unique prefix of at
 * least 4 characters; -1 when none. */
static long find_entry(const tui *t, const char *arg) {
  char *end;
  errno = 0;
  unsigned long k = strtoul(arg, &end, 10);
  if (arg[0] >= '1' && arg[0] <= '9' && !*end && !errno)
    return k <= t->n ? (long)k - 1 : -1;
  size_t len = strlen(arg);
  if (len < 4) return -1;
  long found = -1;
  for (size_t i = 0; i < t->n; i++) {
    if (!strncmp(t->v[i].info.id, arg, len)) {
      if (found >= 0) return -1;
      found = (long)i;
    }
  }
  return found;
}

/* --- library callbacks ------------------------------------------------------ */

static void on_message(void *arg, const tsr_message *m) {
  tui *t = arg;
  long i = entry_index(t, m->conversation);
  if (i < 0 && reload(t) == 0) i = entry_index(t, m->conversation);
  if (i < 0) return;
  entry *e = &t->v[i];
  set_preview(t, e, m);
  if (i == t->open) {
    render_message(t, m);
    if (m->seq > e->seen) e->seen = m->seq;
    return;
  }
  e->changed = true;
  char who[WHO_SIZE];
  sender_name(t, m, who);
  if (!strcmp(who, "me")) return; /* from another device of this account */
  e->unread++;
  if (t->open >= 0) {
    color(t, C_YELLOW);
    printf("-- [%ld] %s: ", i + 1, who);
    render_text(m->text, m->text_len, PREVIEW_CHARS, NULL);
    printf("  (/open %ld)", i + 1);
    color(t, C_RESET);
    fputc('\n', stdout);
  }
}

static void on_update(void *arg, const tsr_message *m) {
  tui *t = arg;
  long i = entry_index(t, m->conversation);
  if (i >= 0 && i == t->open) render_update(t, m);
}

/* A notice (a changed identity key, a device not certified by it): shown
 * wherever one is, since it is about who one is talking to. */
static void on_notice(void *arg, const tsr_notice *n) {
  tui *t = arg;
  long i = entry_index(t, n->conversation);
  color(t, C_YELLOW C_BOLD);
  if (i >= 0 && i != t->open)
    printf("!! [%ld] ", i + 1);
  else
    printf("!! ");
  render_text(n->text, strlen(n->text), 0, NULL);
  color(t, C_RESET);
  fputc('\n', stdout);
}

static void on_joined(void *arg, const char *conv, const char *app, const char *kind) {
  tui *t = arg;
  reload(t);
  long i = entry_index(t, conv);
  if (i < 0) return;
  say(t, false, "joined [%ld] %s %s", i + 1, app, kind);
  t->v[i].changed = t->open < 0;
  if (t->want_open[0] && !strcmp(t->want_open, conv)) {
    t->want_open[0] = '\0';
    open_entry(t, (size_t)i);
  }
}

/* Results that only say the run is ending are not news. */
static bool ending(const tui *t, const tsr_result *res) {
  return t->closing && !strcmp(res->code, "cancelled");
}

static void on_keypackages(void *arg, const tsr_result *res) {
  if (res->err && !ending(arg, res))
    say_result(arg, "uploading KeyPackages (others cannot add this device)", res);
}

static void try_want_open(tui *t) {
  if (!t->want_open[0]) return;
  long i = find_entry(t, t->want_open);
  if (i < 0)
    say(t, true, "no conversation %s here (/list shows them)", t->want_open);
  else
    open_entry(t, (size_t)i);
  t->want_open[0] = '\0';
}

static void on_refreshed(void *arg, const tsr_result *res) {
  tui *t = arg;
  if (ending(t, res)) return;
  t->ready = true;
  if (res->err)
    say_result(t, "fetching the conversations", res);
  else
    reload(t);
  try_want_open(t);
}

typedef struct {
  tui *t;
  unsigned no;
  char conv[TSR_ID_B64_SIZE];
} send_ctx;

static void sent_each(void *arg, const tsr_message *m) {
  pass *p = arg;
  set_preview(p->t, p->e, m);
  if (m->seq > p->e->seen && p->t->open == p->e - p->t->v) p->e->seen = m->seq;
}

static void on_sent(void *arg, const tsr_result *res) {
  send_ctx *s = arg;
  tui *t = s->t;
  t->busy--;
  if (res->err == 0) {
    size_t cap = res->body_len / 2 + 8;
    json_token *tok = malloc(cap * sizeof *tok);
    uint64_t seq = 0;
    int k;
    if (tok && json_parse(res->body, res->body_len, tok, cap, NULL) > 0 &&
        (k = json_object_get(res->body, tok, 0, "seq")) >= 0)
      json_get_u64(res->body, tok, k, &seq);
    free(tok);
    say(t, false, "sent #%u, seq %llu", s->no, (unsigned long long)seq);
    long i = entry_index(t, s->conv);
    if (i >= 0 && seq > 0) {
      pass p = {t, &t->v[i], 0, 0};
      tsr_messages_local(t->c, s->conv, seq - 1, sent_each, &p);
      t->v[i].changed = true;
    }
  } else if (!strcmp(res->code, "network") || !strcmp(res->code, "timeout") ||
             !strcmp(res->code, "unavailable")) {
    say(t, true, "#%u not confirmed (%s): kept in the outbox, sent again when online",
        s->no, res->code);
  } else if (!strcmp(res->code, "cancelled")) {
    say(t, false, "#%u stays in the outbox: sent at the next start", s->no);
  } else {
    char what[32];
    snprintf(what, sizeof what, "#%u not sent", s->no);
    say_result(t, what, res);
  }
  free(s);
}

/* The string member key of a result's body into out ("" when absent). */
static void body_string(const tsr_result *res, const char *key, char *out, size_t cap) {
  out[0] = '\0';
  size_t n = res->body_len / 2 + 8;
  json_token *tok = malloc(n * sizeof *tok);
  int k;
  if (tok && json_parse(res->body, res->body_len, tok, n, NULL) > 0 &&
      (k = json_object_get(res->body, tok, 0, key)) >= 0 &&
      json_get_string(res->body, tok, k, out, cap, NULL, 0) != 0)
    out[0] = '\0';
  free(tok);
}

static void on_answered(void *arg, const tsr_result *res) {
  tui *t = arg;
  t->busy--;
  if (ending(t, res)) return;
  if (res->err) {
    say_result(t, "answering the request", res);
    return;
  }
  char state[16];
  body_string(res, "state", state, sizeof state);
  reload(t);
  say(t, false, "the conversation is now %s", state[0] ? state : "answered");
}

static void on_created(void *arg, const tsr_result *res) {
  tui *t = arg;
  t->busy--;
  if (ending(t, res)) return;
  if (res->err) {
    say_result(t, "new conversation", res);
    return;
  }
  char id[TSR_ID_B64_SIZE];
  body_string(res, "conversation", id, sizeof id);
  reload(t);
  long i = entry_index(t, id);
  if (i < 0) {
    say(t, true, "new conversation: created, but not found here");
    return;
  }
  t->v[i].changed = false;
  open_entry(t, (size_t)i);
}

/* --- commands --------------------------------------------------------------- */

static const char help[] =
    "/list                the conversations (and fetch what changed)\n"
    "/open N | /open ID   open conversation N of the list, or by id\n"
    "/back                close it, back to the list\n"
    "/accept | /decline   answer the open message request\n"
    "/new APP WHO:APP... [--group]   start a conversation in APP, members named by\n"
    "                     profile: +15550101:chat, @bob:social, carol:messenger\n"
    "                     (--account ID:APP: by account id)\n"
    "/help                this text\n"
    "/quit                leave (also end of input, Ctrl-D or Ctrl-C)\n"
    "any other line is sent into the open conversation (//text sends /text)\n";

static bool is_app(const char *s) {
  return !strcmp(s, "chat") || !strcmp(s, "social") || !strcmp(s, "messenger");
}

static void begin_quit(tui *t) {
  if (t->quit) return;
  t->quit = true;
  t->quit_deadline = tsr_client_now_ms(t->c) + QUIT_WAIT_MS;
  if (t->busy) say(t, false, "waiting for %u answer(s) (Ctrl-C: quit now)", t->busy);
}

static entry *need_open(tui *t) {
  if (t->open >= 0) return &t->v[t->open];
  say(t, true, "no conversation open: /open N first (/list shows them)");
  return NULL;
}

static void cmd_new(tui *t, int argc, char **argv) {
  if (argc < 3 || !is_app(argv[1])) {
    say(t, true, "usage: /new APP WHO:APP... [--group] (APP: chat, social, messenger)");
    return;
  }
  tsr_member m[MAX_MEMBERS];
  size_t n = 0;
  bool group = false;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--group")) {
      group = true;
      continue;
    }
    bool by_id = !strcmp(argv[i], "--account");
    if (by_id && ++i == argc) {
      say(t, true, "--account takes ACCOUNT_ID:APP");
      return;
    }
    char *colon = strrchr(argv[i], ':');
    if (!colon || colon == argv[i] || !is_app(colon + 1)) {
      say(t, true, "%s: a member is WHO:APP, e.g. @bob:social", argv[i]);
      return;
    }
    if (n == MAX_MEMBERS) {
      say(t, true, "at most %d members", MAX_MEMBERS);
      return;
    }
    *colon = '\0';
    m[n++] = (tsr_member){.account = by_id ? argv[i] : NULL,
                          .app = colon + 1,
                          .key = by_id ? NULL : argv[i]};
  }
  if (n == 0) {
    say(t, true, "usage: /new APP WHO:APP... [--group]");
    return;
  }
  tsr_conversation_params p = {argv[1], group || n > 1 ? "group" : "direct", m, n};
  int rc = tsr_conversation_create(t->h, &p, on_created, t);
  if (rc == TSR_EINVAL)
    say(t, true, "new conversation: a bad profile or account id, or a member twice");
  else if (rc)
    say(t, true, "new conversation: %s", tsr_strerror(rc));
  else {
    t->busy++;
    say(t, false, "creating…");
  }
}

static void command(tui *t, char *s) {
  char *argv[2 * MAX_MEMBERS + 4];
  int argc = 0;
  for (char *tok = strtok(s, " \t"); tok; tok = strtok(NULL, " \t")) {
    if (argc == (int)(sizeof argv / sizeof *argv)) {
      say(t, true, "too many words");
      return;
    }
    argv[argc++] = tok;
  }
  const char *cmd = argv[0];
  if (!strcmp(cmd, "/quit") || !strcmp(cmd, "/q")) {
    begin_quit(t);
  } else if (!strcmp(cmd, "/help") || !strcmp(cmd, "/?")) {
    fputs(help, stdout);
  } else if (!strcmp(cmd, "/list") || !strcmp(cmd, "/l")) {
    reload(t);
    render_list(t);
    int rc = tsr_conversations_refresh(t->h, on_refreshed, t);
    if (rc) say(t, true, "fetching the conversations: %s", tsr_strerror(rc));
  } else if (!strcmp(cmd, "/open") || !strcmp(cmd, "/o")) {
    long i = argc == 2 ? find_entry(t, argv[1]) : -1;
    if (argc != 2)
      say(t, true, "usage: /open N (the number in /list) or /open ID");
    else if (i < 0)
      say(t, true, "no conversation %s (/list shows them)", argv[1]);
    else
      open_entry(t, (size_t)i);
  } else if (!strcmp(cmd, "/back") || !strcmp(cmd, "/b")) {
    t->open = -1;
    render_list(t);
  } else if (!strcmp(cmd, "/accept") || !strcmp(cmd, "/decline")) {
    entry *e = need_open(t);
    if (!e) return;
    int rc = tsr_conversation_answer(t->h, e->info.id, cmd[1] == 'a', on_answered, t);
    if (rc)
      say(t, true, "answering the request: %s", tsr_strerror(rc));
    else
      t->busy++;
  } else if (!strcmp(cmd, "/new")) {
    cmd_new(t, argc, argv);
  } else {
    say(t, true, "unknown command %s (/help lists them)", cmd);
  }
}

static void send_line(tui *t, const char *text) {
  entry *e = need_open(t);
  if (!e) return;
  send_ctx *s = malloc(sizeof *s);
  if (!s) {
    say(t, true, "not sent: out of memory");
    return;
  }
  *s = (send_ctx){t, t->send_no + 1, ""};
  memcpy(s->conv, e->info.id, sizeof s->conv);
  int rc = tsr_send_text(t->h, e->info.id, text, on_sent, s);
  if (rc) {
    free(s);
    say(t, true, "not sent: %s",
        rc == TSR_EIO ? "the state file cannot be written" : tsr_strerror(rc));
    return;
  }
  t->send_no++;
  t->busy++;
  say(t, false, "sending… #%u", t->send_no);
}

/* One whole line of input (without its newline). */
static void input_line(tui *t) {
  size_t len = t->line_len;
  if (len && t->line[len - 1] == '\r') len--;
  if (t->overlong || len > TEXT_MAX) {
    say(t, true, "line too long (%zu bytes, at most %d): not sent",
        t->overlong ? t->overlong : len, TEXT_MAX);
    return;
  }
  t->line[len] = '\0';
  if (len == 0) return;
  if (memchr(t->line, '\0', len)) {
    say(t, true, "the line holds a NUL byte: not sent");
    return;
  }
  if (!utf8_valid((const uint8_t *)t->line, len)) {
    say(t, true, "the line is not valid UTF-8: not sent");
    return;
  }
  if (t->line[0] == '/' && t->line[1] != '/')
    command(t, t->line);
  else
    send_line(t, t->line[0] == '/' ? t->line + 1 : t->line);
}

/* Splits what read() gave into lines; a line over the limit is counted
 * and dropped, not kept. */
static void input(tui *t, const char *buf, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == '\n') {
      input_line(t);
      t->line_len = 0;
      t->overlong = 0;
    } else if (t->overlong) {
      t->overlong++;
    } else if (t->line_len == sizeof t->line - 1) {
      t->overlong = t->line_len + 1;
    } else {
      t->line[t->line_len++] = buf[i];
    }
  }
}

static void read_stdin(tui *t) {
  char buf[16384];
  ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
  if (r > 0) {
    input(t, buf, (size_t)r);
    return;
  }
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  t->eof = true;
  if (t->line_len || t->overlong) input(t, "\n", 1); /* a last line without newline */
  begin_quit(t);
}

/* --- the loop --------------------------------------------------------------- */

/* Connection changes, and the list read again whenever the chat's work
 * settles (a refresh after a reconnect may have changed states). */
static void watch(tui *t) {
  int s = tsr_ws_state(tsr_chat_ws(t->h));
  if (s != t->ws_state) {
    if (s == TSR_WS_CONNECTED) {
      color(t, C_GREEN);
      puts("-- online");
      color(t, C_RESET);
      t->was_online = true;
    } else if (t->was_online) {
      say(t, true, "offline — reconnecting");
    }
    t->ws_state = s;
  }
  size_t p = tsr_chat_pending(t->h);
  if (p == 0 && t->pending > 0) reload(t);
  t->pending = p;
}

static int64_t sooner(int64_t wait, int64_t t) { return t >= 0 && t < wait ? t : wait; }

static int run(tui *t) {
  tsr_ws *ws = tsr_chat_ws(t->h);
  for (;;) {
    if (interrupts >= 2) return 0;
    if (interrupts == 1) begin_quit(t);
    uint64_t now = tsr_client_now_ms(t->c);
    if (t->quit && (t->busy == 0 || now >= t->quit_deadline)) return 0;
    tsr_client_on_tick(t->c, now);
    tsr_ws_on_tick(ws, now);
    tsr_chat_on_tick(t->h, now);
    watch(t);
    show_changes(t);
    fflush(stdout);
    struct pollfd pf[3];
    int np = 0, si = -1, ci = -1, wi = -1;
    bool ready = t->ready || now >= t->ready_by;
    if (!t->eof && !t->quit && ready) {
      pf[np] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
      si = np++;
    }
    int fd = tsr_client_fd(t->c);
    if (fd >= 0) {
      pf[np] = (struct pollfd){
          fd, (short)(POLLIN | (tsr_client_want_write(t->c) ? POLLOUT : 0)), 0};
      ci = np++;
    }
    fd = tsr_ws_fd(ws);
    if (fd >= 0) {
      pf[np] =
          (struct pollfd){fd, (short)(POLLIN | (tsr_ws_want_write(ws) ? POLLOUT : 0)), 0};
      wi = np++;
    }
    int64_t wait = 1000;
    wait = sooner(wait, tsr_client_next_timeout(t->c, now));
    wait = sooner(wait, tsr_ws_next_timeout(ws, now));
    wait = sooner(wait, tsr_chat_next_timeout(t->h, now));
    if (t->quit) wait = sooner(wait, (int64_t)(t->quit_deadline - now));
    if (!ready) wait = sooner(wait, (int64_t)(t->ready_by - now));
    int n = poll(pf, (nfds_t)np, (int)wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      return TSR_EIO;
    }
    if (ci >= 0 && pf[ci].revents) {
      if (pf[ci].revents & POLLOUT) tsr_client_on_writable(t->c);
      if (pf[ci].revents & (POLLIN | POLLHUP | POLLERR)) tsr_client_on_readable(t->c);
    }
    if (wi >= 0 && pf[wi].revents) {
      if (pf[wi].revents & POLLOUT) tsr_ws_on_writable(ws);
      if (pf[wi].revents & (POLLIN | POLLHUP | POLLERR)) tsr_ws_on_readable(ws);
    }
    if (si >= 0 && pf[si].revents) read_stdin(t);
  }
}

int chat_tui(tsr_client *c, const char *conversation) {
  if (json_out) die("usage", "the interactive chat has no --json (chat read, listen do)");
  tsr_session_info me;
  if (tsr_client_session(c, &me) || !me.logged_in) die("state", "not logged in");
  static tui t; /* the line buffer is large; callbacks of the client may
                   still come after this returns (its free cancels them) */
  memset(&t, 0, sizeof t);
  t.c = c;
  t.open = -1;
  t.ws_state = TSR_WS_DISCONNECTED;
  t.ready_by = tsr_client_now_ms(c) + READY_MS;
  memcpy(t.me, me.account_id, sizeof t.me);
  const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
  t.color = isatty(STDOUT_FILENO) && !(nc && *nc) && !(term && !strcmp(term, "dumb"));
  if (conversation) snprintf(t.want_open, sizeof t.want_open, "%s", conversation);

  struct sigaction sa = {0};
  sa.sa_handler = on_interrupt; /* no SA_RESTART: poll returns at once */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  tsr_chat_config cfg = {.on_message = on_message,
                         .on_joined = on_joined,
                         .on_update = on_update,
                         .on_typing = on_update,
                         .on_notice = on_notice,
                         .arg = &t};
  int rc = tsr_chat_new(c, &cfg, &t.h);
  if (rc) die_call(rc, NULL, "chat");
  color(&t, C_BOLD);
  printf("tessera chat — %s (%.8s); /help for commands\n", me.login[0] ? me.login : "",
         me.account_id);
  color(&t, C_RESET);
  say(&t, false, "connecting…");
  if (reload(&t) == 0) render_list(&t);
  /* A conversation named on the command line and known here opens now;
   * else after the refresh (it may be waiting as a Welcome). */
  if (t.want_open[0]) {
    long i = find_entry(&t, t.want_open);
    if (i >= 0) {
      t.want_open[0] = '\0';
      open_entry(&t, (size_t)i);
    }
  }
  /* The chat refreshes by itself on connect; this call is ours so that a
   * server that refuses us (e.g. a revoked token) is said, not silent. */
  rc = tsr_conversations_refresh(t.h, on_refreshed, &t);
  if (rc) {
    say(&t, true, "fetching the conversations: %s", tsr_strerror(rc));
    t.ready = true;
  }
  rc = tsr_keypackages_replenish(c, 1, 20, on_keypackages, &t);
  if (rc) say(&t, true, "uploading KeyPackages: %s", tsr_strerror(rc));
  fflush(stdout);

  rc = run(&t);
  t.closing = true;
  tsr_chat_free(t.h); /* sends still in flight stay in the outbox */
  for (size_t i = 0; i < t.n; i++) free(t.v[i].preview);
  free(t.v);
  fflush(stdout);
  if (rc < 0) die("local", "chat: %s", tsr_strerror(rc));
  return 0;
}
