/* tessera: the command-line client on libtessera (accounts, devices, MLS
 * KeyPackages, app profiles, graphs, blocks, reachability, ops and
 * pushes of the realtime session, end-to-end encrypted conversations, and
 * public life: posts, stories, feeds, src/cli/cli_public.c).
 *
 *   tessera [--server HOST:PORT] [--state FILE] [--tls] [--ca FILE] [--json] COMMAND
 *
 * Each run opens the device state file, does one call with the blocking
 * API and exits: 0 on success, 1 with one line "error: <code>: <message>"
 * on stderr otherwise. Passwords come from TSR_PASSWORD or a prompt
 * without echo on the terminal. Defaults: server $TSR_SERVER or
 * 127.0.0.1:8080, state $TSR_STATE or ./tessera-state.db. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/json.h"
#include "tessera/tessera.h"

bool json_out;

static const char usage[] =
    "usage: tessera [--server HOST:PORT] [--state FILE] [--tls] [--ca FILE] [--json] "
    "COMMAND\n"
    "commands:\n"
    "  register --login L [--phone P] [--email E] [--device-name N]\n"
    "  login --login L [--certificate CERT] [--device-name N]\n"
    "  logout\n"
    "  whoami\n"
    "  safety-number ACCOUNT_ID     the number to compare with that person\n"
    "  devices\n"
    "  device revoke DEVICE_ID\n"
    "  device key                      print this device's public key\n"
    "  device certify KEY              (existing device) certificate for KEY\n"
    "  device link-code --for KEY      (existing device) code + certificate for KEY\n"
    "  device link CODE CERT [--device-name N]   (new device) join the account\n"
    "  keys status                     KeyPackages on the server and private parts here\n"
    "  keys upload [--suite 1|3] [--count N]   top the server's KeyPackages up to N\n"
    "                                  (default 100, at most 200; suite default 1)\n"
    "  phone code PHONE                send a verification code (E.164 number)\n"
    "  phone verify PHONE CODE         verify the number with that code\n"
    "apps (APP is chat, social or messenger; one profile per app):\n"
    "  profile set chat [--name N] [--about A]     needs a verified phone number\n"
    "  profile set social --handle H [--name N] [--bio B] [--private on|off]\n"
    "  profile set messenger --username U [--name N]\n"
    "              [--page on|off --category C --hours H --website W]\n"
    "  profile show APP [WHO]          yours, or WHO's (number, handle or username)\n"
    "  profile delete APP              also removes your edges in that app\n"
    "  search APP PREFIX               handles/usernames by prefix; chat: whole number\n"
    "  contacts                        chat contacts that have a chat profile\n"
    "  contacts import NUMBER... | contacts import --file F   replace the address book\n"
    "  follow HANDLE | unfollow HANDLE                (social)\n"
    "  follow-requests [approve|decline HANDLE]       (social)\n"
    "  followers | following                          (social)\n"
    "  friend request|accept|decline|remove USERNAME  (messenger)\n"
    "  friends | friend-requests                      (messenger)\n"
    "  page follow|unfollow|followers USERNAME        (messenger business pages)\n"
    "  block APP TARGET | unblock APP TARGET | blocks   blocks hide both accounts\n"
    "                                  from each other in every app\n"
    "realtime session (WebSocket; conversations and pushes, docs/protocol.md):\n"
    "  ws call OP [JSON-FIELDS]        one op, e.g. `ws call whoami`, `ws call sync\n"
    "                                  '\"conversation\":\"ID\",\"after\":0'`; prints "
    "the\n"
    "                                  ok object (--json: as JSON)\n"
    "  ws listen [--seconds N]         print each push as one JSON line until\n"
    "                                  interrupted or N seconds pass\n"
    "conversations (end-to-end encrypted; kept in the state file):\n"
    "  chat [open CONVERSATION]        interactive: the list and a conversation, live\n"
    "                                  (/help inside; lines you type are sent)\n"
    "  chat create --app APP --with WHO:APP... [--group] [--title T]\n"
    "                                  a direct conversation (one member) or a group\n"
    "                                  (--title: a group with that title); WHO is the\n"
    "                                  member's profile\n"
    "                                  in APP as you would type it: +15550101 (chat),\n"
    "                                  @bob (social), carol (messenger); e.g. --with\n"
    "                                  @bob:social --with +15550101:chat; prints the\n"
    "                                  conversation id\n"
    "      --with-account ACCOUNT_ID:APP   a member by account id (22 characters, as\n"
    "                                  in `chat read`), reached at their APP profile\n"
    "  chat list                       joins what is waiting, lists conversations\n"
    "  chat send CONVERSATION TEXT [--reply SEQ]   prints the seq the server gave it\n"
    "  chat edit CONVERSATION SEQ TEXT   change your own message (everyone sees it)\n"
    "  chat delete CONVERSATION SEQ    delete your own message for everyone\n"
    "  chat react CONVERSATION SEQ EMOJI [--remove]   add or take back a reaction\n"
    "  chat rename CONVERSATION TITLE  the title travels only inside MLS\n"
    "  chat typing CONVERSATION on|off tell the others online (not stored)\n"
    "  chat read CONVERSATION [--no-receipt]   syncs, prints the messages: seq, time,\n"
    "                                  sender, text (replies, edits, deletions,\n"
    "                                  reactions, delivered/read marks of your own);\n"
    "                                  sends a read receipt unless --no-receipt\n"
    "  chat listen [--seconds N]       prints messages, edits, deletions, reactions,\n"
    "                                  receipts and typing as they come (one line\n"
    "                                  each), joining conversations on their Welcome\n"
    "  chat accept|decline CONVERSATION   answer a message request\n"
    "  chat add CONVERSATION WHO:APP... [--with-account ACCOUNT_ID:APP]\n"
    "                                  add people to a group (admins)\n"
    "  chat remove CONVERSATION ACCOUNT_ID...   remove people (admins)\n"
    "  chat leave CONVERSATION         leave a group\n"
    "  chat promote|demote CONVERSATION ACCOUNT_ID   make admin / plain member\n"
    "  chat members CONVERSATION       who is in it, with roles\n"
    "  chat attach CONVERSATION FILE [--caption TEXT]   encrypt FILE here, upload it\n"
    "                                  and send its key inside MLS; prints the seq\n"
    "  chat save CONVERSATION SEQ OUT_PATH   download and decrypt the attachment of\n"
    "                                  message SEQ; OUT_PATH appears only once the\n"
    "                                  whole file verified\n"
    "  (every chat command also adds this account's new devices to its\n"
    "   conversations and removes revoked ones)\n"
    "  (create and listen first upload KeyPackages when the server holds few)\n"
    "attachments (low level; chat attach/save do both steps):\n"
    "  attach upload FILE              encrypt and upload FILE; prints the descriptor\n"
    "                                  (JSON, holds the key: keep it secret)\n"
    "  attach download DESCRIPTOR OUT  download, verify and decrypt into OUT\n"
    "public life (social and messenger; public, not end-to-end encrypted; each takes\n"
    "[--app social|messenger], default social, and --json):\n"
    "  post --caption TEXT [--image FILE [--alt TEXT]]... [--video FILE [--alt TEXT]]\n"
    "       [--location L] [--visibility public|followers|close_friends]\n"
    "       [--to social,messenger]    upload the media, publish, print the post\n"
    "  post show|delete POST_ID | post edit POST_ID --caption TEXT\n"
    "  feed [--limit N] [--before POST_ID] [--profile HANDLE | --tag TAG]\n"
    "                                  home feed (people you follow, and you), a\n"
    "                                  profile's posts or a hashtag page, newest first\n"
    "  like POST_ID [--undo] | likes POST_ID\n"
    "  comment POST_ID TEXT [--reply-to COMMENT_ID]   prints the spam filter's verdict\n"
    "  comments POST_ID [--hidden] [--after COMMENT_ID]   --hidden: spam and held ones\n"
    "                                  (the post's author)\n"
    "  comment delete COMMENT_ID | comment appeal COMMENT_ID [--note TEXT]\n"
    "  story --image FILE | --video FILE [--alt T] [--caption T] [--visibility V]\n"
    "        [--to social,messenger]   a story, shown for 24 hours\n"
    "  story list | story view|viewers|delete STORY_ID   the tray; viewers: yours only\n"
    "  follow HANDLE [--undo] [--app social|messenger]   messenger: a business page\n"
    "  close-friends list | close-friends add|remove HANDLE\n"
    "  notifications [--read] [--before ID] [--limit N]   --read: mark them read\n"
    "  report (--post ID | --comment ID) --reason spam|harassment|nudity|violence|hate|\n"
    "         other [--note TEXT]\n"
    "reachability (who may start a conversation with you, per source app):\n"
    "  reachability APP                show your rules for your APP profile\n"
    "  reachability APP set FROM_APP everyone|graph|nobody\n"
    "  reach FROM_APP TO_APP TARGET    may you start one? prints allowed, or the\n"
    "                                  request id and \"request sent\"\n"
    "  requests                        your pending message requests, in and out\n"
    "  requests accept|decline|block ID   answer an incoming request\n"
    "linking: on the new device run `device key`; on a device holding the identity key\n"
    "(the one that registered) run `device link-code --for KEY`; back on the new device\n"
    "run `device link CODE CERT`. The code is single-use and expires after 5 minutes.\n"
    "With the password instead of a code: `device certify KEY` on the existing device,\n"
    "then `login --login L --certificate CERT` on the new one (a device holding the\n"
    "identity key needs no --certificate).\n"
    "The password is read from TSR_PASSWORD, else prompted for without echo.\n";

_Noreturn void die(const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "error: %s: ", code);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* A call that failed before or after reaching the server. */
_Noreturn void die_call(int rc, tsr_reply *r, const char *what) {
  if (r && r->done && r->code && r->code[0]) die(r->code, "%s", r->message);
  switch (rc) {
  case TSR_ESTATE: die("state", "%s", what);
  case TSR_EINVAL: die("usage", "%s: invalid argument", what);
  case TSR_EDECODE: die("bad_input", "%s: malformed key or certificate", what);
  case TSR_ECONFLICT:
    die("state", "this state file belongs to another account; use another --state");
  default: die("local", "%s: %s (%s)", what, tsr_strerror(rc), tsr_errname(rc));
  }
}

void print_body(const tsr_reply *r) {
  fwrite(r->body, 1, r->body_len, stdout);
  fputc('\n', stdout);
}

/* Reads the password from TSR_PASSWORD or the terminal (no echo). */
static char *read_password(const char *prompt) {
  const char *env = getenv("TSR_PASSWORD");
  if (env && *env) return strdup(env);
  FILE *tty = fopen("/dev/tty", "r+");
  if (!tty) die("usage", "no terminal: set TSR_PASSWORD");
  struct termios old, quiet;
  int fd = fileno(tty);
  bool restore = tcgetattr(fd, &old) == 0;
  if (restore) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  fputs(prompt, tty);
  fflush(tty);
  char buf[1100];
  char *got = fgets(buf, sizeof buf, tty);
  if (restore) tcsetattr(fd, TCSAFLUSH, &old);
  fputc('\n', tty);
  fclose(tty);
  if (!got) die("usage", "no password given");
  buf[strcspn(buf, "\r\n")] = '\0';
  char *p = strdup(buf);
  memset(buf, 0, sizeof buf);
  return p;
}

static void free_password(char *p) {
  if (!p) return;
  volatile char *v = p;
  while (*v) *v++ = 0;
  free(p);
}

static const char *default_device_name(void) {
  static char host[256];
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) return "tessera-cli";
  return host;
}

/* Option value after argv[*i], or die. */
const char *optval(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) die("usage", "%s needs a value", argv[*i]);
  return argv[++*i];
}

/* --- commands ------------------------------------------------------------ */

static void print_session(const tsr_reply *r, const char *what) {
  if (json_out) {
    print_body(r);
    return;
  }
  json_token t[32];
  char acc[64] = "", dev[64] = "";
  if (json_parse(r->body, r->body_len, t, 32, NULL) > 0) {
    int i = json_object_get(r->body, t, 0, "account_id");
    if (i >= 0) json_get_string(r->body, t, i, acc, sizeof acc, NULL, 0);
    i = json_object_get(r->body, t, 0, "device_id");
    if (i >= 0) json_get_string(r->body, t, i, dev, sizeof dev, NULL, 0);
  }
  printf("%s: account %s, device %s\n", what, acc, dev);
}

static int cmd_register(tsr_client *c, int argc, char **argv) {
  tsr_register_params p = {.device_name = default_device_name()};
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--login"))
      p.login = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--phone"))
      p.phone = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--email"))
      p.email = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--device-name"))
      p.device_name = optval(argc, argv, &i);
    else
      die("usage", "register: unknown argument %s", argv[i]);
  }
  if (!p.login) die("usage", "register needs --login");
  char *pw = read_password("new password: ");
  p.password = pw;
  tsr_reply r = {0};
  int rc = tsr_account_register_sync(c, &p, &r);
  free_password(pw);
  if (rc == TSR_ESTATE) die("state", "already logged in: log out first");
  if (rc) die_call(rc, &r, "register");
  print_session(&r, "registered");
  tsr_reply_clear(&r);
  return 0;
}

static int cmd_login(tsr_client *c, int argc, char **argv) {
  const char *login = NULL, *name = default_device_name(), *cert = NULL;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--login"))
      login = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--certificate"))
      cert = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--device-name"))
      name = optval(argc, argv, &i);
    else
      die("usage", "login: unknown argument %s", argv[i]);
  }
  if (!login) die("usage", "login needs --login");
  char *pw = read_password("password: ");
  tsr_reply r = {0};
  int rc = tsr_session_login_sync(c, login, pw, name, cert, &r);
  free_password(pw);
  if (rc == TSR_ESTATE && !r.done)
    die("state",
        "already logged in, or no certificate: this device holds no identity key "
        "for %s, so pass --certificate (see --help)",
        login);
  if (rc) die_call(rc, &r, "login");
  print_session(&r, "logged in");
  tsr_reply_clear(&r);
  return 0;
}

static int cmd_logout(tsr_client *c) {
  tsr_reply r = {0};
  int rc = tsr_session_logout_sync(c, &r);
  if (rc == TSR_ESTATE && !r.done) die("state", "not logged in");
  if (rc) die_call(rc, &r, "logout");
  if (json_out)
    print_body(&r);
  else
    printf("logged out\n");
  tsr_reply_clear(&r);
  return 0;
}

static void json_str(const char *body, const json_token *t, int obj, const char *key,
                     char *out, size_t cap) {
  out[0] = '\0';
  int i = json_object_get(body, t, obj, key);
  if (i >= 0 && t[i].type == JSON_STRING) json_get_string(body, t, i, out, cap, NULL, 0);
}

static void json_num(const char *body, const json_token *t, int obj, const char *key,
                     char *out, size_t cap) {
  out[0] = '\0';
  int i = json_object_get(body, t, obj, key);
  if (i >= 0 && t[i].type == JSON_NUMBER)
    snprintf(out, cap, "%.*s", (int)(t[i].end - t[i].start), body + t[i].start);
}

/* Unix seconds (decimal text) as "2026-11-27 10:26 UTC" for people;
 * anything else unchanged. */
static void human_time(const char *secs, char *out, size_t cap) {
  char *end;
  long long v = strtoll(secs, &end, 10);
  time_t tt = (time_t)v;
  struct tm tm;
  if (!secs[0] || *end || v < 0 || !gmtime_r(&tt, &tm) ||
      strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
    snprintf(out, cap, "%s", secs);
}

/* Prints the device list of a GET /v1/devices answer. */
static void print_devices(const tsr_reply *r) {
  size_t cap = r->body_len / 2 + 4;
  json_token *t = malloc(cap * sizeof *t);
  if (!t || json_parse(r->body, r->body_len, t, cap, NULL) <= 0)
    die("bad_response", "unparsable device list");
  int arr = json_object_get(r->body, t, 0, "devices");
  if (arr < 0 || t[arr].type != JSON_ARRAY) die("bad_response", "no device list");
  for (int d = json_first_child(t, arr); d >= 0; d = json_next_sibling(t, arr, d)) {
    char id[64], name[256], num[32], created[48], seen[48];
    json_str(r->body, t, d, "device_id", id, sizeof id);
    json_str(r->body, t, d, "name", name, sizeof name);
    json_num(r->body, t, d, "created_at", num, sizeof num);
    human_time(num, created, sizeof created);
    json_num(r->body, t, d, "last_seen_at", num, sizeof num);
    human_time(num, seen, sizeof seen);
    int cur = json_object_get(r->body, t, d, "current");
    bool current = false;
    if (cur >= 0) json_get_bool(t, cur, &current);
    printf("%s  %-20s  created %s  last seen %s%s\n", id, name,
           created[0] ? created : "-", seen[0] ? seen : "-",
           current ? "  (this device)" : "");
  }
  free(t);
}

static int cmd_devices(tsr_client *c) {
  tsr_reply r = {0};
  int rc = tsr_devices_list_sync(c, &r);
  if (rc == TSR_ESTATE && !r.done) die("state", "not logged in");
  if (rc) die_call(rc, &r, "devices");
  if (json_out)
    print_body(&r);
  else
    print_devices(&r);
  tsr_reply_clear(&r);
  return 0;
}

/* tessera safety-number ACCOUNT_ID: the number both people compare. */
static int cmd_safety_number(tsr_client *c, int argc, char **argv) {
  if (argc != 1) die("usage", "safety-number ACCOUNT_ID (as `chat read` shows senders)");
  char num[TSR_SAFETY_NUMBER_SIZE];
  int rc = tsr_safety_number_sync(c, argv[0], num);
  if (rc == TSR_EINVAL) die("usage", "ACCOUNT_ID is a 22-character account id");
  if (rc) die_call(rc, NULL, "safety-number");
  if (json_out)
    printf("{\"account_id\":\"%s\",\"safety_number\":\"%s\"}\n", argv[0], num);
  else
    printf("%.35s\n%s\n", num, num + 36); /* two lines of six groups */
  return 0;
}

static int cmd_whoami(tsr_client *c) {
  tsr_session_info s;
  int rc = tsr_client_session(c, &s);
  if (rc) die_call(rc, NULL, "whoami");
  if (!s.logged_in) die("state", "not logged in");
  /* Ask the server too, so that a revoked session shows as such. */
  tsr_reply r = {0};
  rc = tsr_devices_list_sync(c, &r);
  if (rc) die_call(rc, &r, "whoami");
  tsr_reply_clear(&r);
  if (json_out) {
    buf_t b;
    buf_init(&b);
    json_writer w;
    json_writer_init(&w, &b, 0);
    json_write_object_begin(&w);
    json_write_key(&w, "login");
    json_write_string(&w, s.login);
    json_write_key(&w, "account_id");
    json_write_string(&w, s.account_id);
    json_write_key(&w, "device_id");
    json_write_string(&w, s.device_id);
    json_write_key(&w, "signature_key");
    json_write_string(&w, s.device_key);
    json_write_key(&w, "identity_key");
    if (s.has_identity_key)
      json_write_string(&w, s.identity_key);
    else
      json_write_null(&w);
    json_write_object_end(&w);
    if (json_writer_finish(&w) == 0) printf("%.*s\n", (int)b.len, (const char *)b.ptr);
    buf_free(&b);
  } else {
    printf("login %s\naccount %s\ndevice %s\nsignature key %s\n", s.login, s.account_id,
           s.device_id, s.device_key);
    if (s.has_identity_key) printf("identity key %s\n", s.identity_key);
  }
  return 0;
}

static int cmd_device(tsr_client *c, int argc, char **argv) {
  if (argc < 1) die("usage", "device needs a subcommand (revoke, key, link-code, link)");
  tsr_reply r = {0};
  int rc;
  if (!strcmp(argv[0], "revoke")) {
    if (argc != 2) die("usage", "device revoke DEVICE_ID");
    rc = tsr_device_revoke_sync(c, argv[1], &r);
    if (rc == TSR_ESTATE && !r.done) die("state", "not logged in");
    if (rc) die_call(rc, &r, "device revoke");
    if (json_out)
      print_body(&r);
    else
      printf("revoked %s\n", argv[1]);
  } else if (!strcmp(argv[0], "key")) {
    char key[TSR_KEY_B64_SIZE];
    if ((rc = tsr_device_key(c, key))) die_call(rc, NULL, "device key");
    if (json_out)
      printf("{\"signature_key\":\"%s\"}\n", key);
    else
      printf("%s\n", key);
  } else if (!strcmp(argv[0], "certify")) {
    if (argc != 2) die("usage", "device certify KEY");
    char cert[TSR_CERT_B64_SIZE];
    rc = tsr_device_certify(c, argv[1], cert);
    if (rc == TSR_ESTATE) die("state", "this device holds no identity key");
    if (rc) die_call(rc, NULL, "device certify");
    if (json_out)
      printf("{\"signature_key\":\"%s\",\"certificate\":\"%s\"}\n", argv[1], cert);
    else
      printf("%s\n", cert);
  } else if (!strcmp(argv[0], "link-code")) {
    if (argc != 3 || strcmp(argv[1], "--for")) die("usage", "device link-code --for KEY");
    rc = tsr_link_code_create_sync(c, argv[2], &r);
    if (rc == TSR_ESTATE && !r.done)
      die("state", "this device holds no identity key or is not logged in");
    if (rc) die_call(rc, &r, "device link-code");
    if (json_out) {
      print_body(&r);
    } else {
      json_token t[16];
      char code[64] = "", cert[TSR_CERT_B64_SIZE + 8] = "", exp[32] = "";
      if (json_parse(r.body, r.body_len, t, 16, NULL) > 0) {
        json_str(r.body, t, 0, "code", code, sizeof code);
        json_str(r.body, t, 0, "certificate", cert, sizeof cert);
        json_num(r.body, t, 0, "expires_at", exp, sizeof exp);
      }
      printf("code %s\ncertificate %s\nexpires_at %s\n"
             "on the new device: tessera device link %s %s\n",
             code, cert, exp, code, cert);
    }
  } else if (!strcmp(argv[0], "link")) {
    const char *name = default_device_name();
    if (argc == 5 && !strcmp(argv[3], "--device-name"))
      name = argv[4];
    else if (argc != 3)
      die("usage", "device link CODE CERT [--device-name N]");
    rc = tsr_device_link_sync(c, argv[1], argv[2], name, &r);
    if (rc == TSR_ESTATE && !r.done) die("state", "already logged in: log out first");
    if (rc) die_call(rc, &r, "device link");
    print_session(&r, "linked");
  } else {
    die("usage", "unknown device subcommand %s", argv[0]);
  }
  tsr_reply_clear(&r);
  return 0;
}

/* --- KeyPackages ------------------------------------------------------------ */

/* Member key of the object at token obj as text ("" when absent). */
static void json_text(const tsr_reply *r, const json_token *t, int obj, const char *key,
                      char *out, size_t cap) {
  out[0] = '\0';
  int i =
      obj < 0 || t[obj].type != JSON_OBJECT ? -1 : json_object_get(r->body, t, obj, key);
  if (i < 0) return;
  bool b;
  if (json_get_bool(t, i, &b) == 0)
    snprintf(out, cap, "%s", b ? "yes" : "no");
  else
    snprintf(out, cap, "%.*s", (int)(t[i].end - t[i].start), r->body + t[i].start);
}

/* The counts of a keys answer, for people: the server's and this
 * device's, every suite together and per suite. */
static void print_keys(const tsr_reply *r, bool upload) {
  json_token t[64];
  if (json_parse(r->body, r->body_len, t, 64, NULL) <= 0 || t[0].type != JSON_OBJECT)
    die("bad_response", "unparsable answer");
  char avail[24], lr[8], up[24], uplr[8], suite[8], loc[24], l1[24], l3[24], llr[8];
  json_text(r, t, 0, "available", avail, sizeof avail);
  json_text(r, t, 0, "last_resort", lr, sizeof lr);
  json_text(r, t, 0, "uploaded", up, sizeof up);
  json_text(r, t, 0, "last_resort_uploaded", uplr, sizeof uplr);
  json_text(r, t, 0, "suite", suite, sizeof suite);
  json_text(r, t, 0, "local_secrets", loc, sizeof loc);
  json_text(r, t, 0, "local_suite_1", l1, sizeof l1);
  json_text(r, t, 0, "local_suite_3", l3, sizeof l3);
  json_text(r, t, 0, "local_last_resort", llr, sizeof llr);
  if (upload) {
    printf("uploaded %s KeyPackages of suite %s%s\n", up, suite,
           !strcmp(uplr, "yes") ? " and a new last resort" : "");
    printf("server: %s available of suite %s, last resort %s\n", avail, suite, lr);
  } else {
    printf("server: %s available (all suites), last resort %s\n", avail, lr);
  }
  int bs = json_object_get(r->body, t, 0, "by_suite");
  for (int i = 0; i < 2 && bs >= 0 && t[bs].type == JSON_OBJECT; i++) {
    int o = json_object_get(r->body, t, bs, i ? "3" : "1");
    char sa[24], slr[8], sl[24], sllr[8];
    json_text(r, t, o, "available", sa, sizeof sa);
    json_text(r, t, o, "last_resort", slr, sizeof slr);
    json_text(r, t, o, "local_secrets", sl, sizeof sl);
    json_text(r, t, o, "local_last_resort", sllr, sizeof sllr);
    printf("suite %d: server %s available, last resort %s; this device %s private parts,"
           " last resort %s\n",
           i ? 3 : 1, sa, slr, sl, sllr);
  }
  printf("this device: %s private parts (suite 1: %s, suite 3: %s), last resort %s\n",
         loc, l1, l3, llr);
}

/* Parses a decimal number in [lo, hi] for option opt, or dies. */
static unsigned number(const char *opt, const char *v, unsigned lo, unsigned hi) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(v, &end, 10);
  if (errno || !v[0] || *end || v[0] == '-' || n < lo || n > hi)
    die("usage", "%s takes a number from %u to %u", opt, lo, hi);
  return (unsigned)n;
}

static int cmd_keys(tsr_client *c, int argc, char **argv) {
  if (argc < 1) die("usage", "keys status | keys upload [--suite 1|3] [--count N]");
  tsr_reply r = {0};
  int rc;
  bool upload = !strcmp(argv[0], "upload");
  if (!strcmp(argv[0], "status")) {
    if (argc != 1) die("usage", "keys status takes no arguments");
    rc = tsr_keypackages_status_sync(c, &r);
  } else if (upload) {
    unsigned suite = 1, count = 0;
    for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "--suite")) {
        suite = number("--suite", optval(argc, argv, &i), 1, 3);
        if (suite == 2) die("usage", "--suite takes 1 or 3");
      } else if (!strcmp(argv[i], "--count")) {
        count = number("--count", optval(argc, argv, &i), 1, TSR_KEYPACKAGES_MAX);
      } else {
        die("usage", "keys upload: unknown argument %s", argv[i]);
      }
    }
    rc = tsr_keypackages_replenish_sync(c, (uint16_t)suite, count, &r);
  } else {
    die("usage", "unknown keys subcommand %s (status, upload)", argv[0]);
  }
  if (rc == TSR_ESTATE && !r.done) die("state", "not logged in");
  if (rc) die_call(rc, &r, upload ? "keys upload" : "keys status");
  if (json_out)
    print_body(&r);
  else
    print_keys(&r, upload);
  tsr_reply_clear(&r);
  return 0;
}

/* --- apps: profiles, search, graphs, blocks -------------------------------- */

static bool is_app(const char *s) {
  return !strcmp(s, "chat") || !strcmp(s, "social") || !strcmp(s, "messenger");
}

static const char *need_app(const char *s) {
  if (!is_app(s)) die("usage", "unknown app %s (chat, social or messenger)", s);
  return s;
}

/* Prints one JSON value in text form: strings bare, others as written. */
static void print_scalar(const char *body, const json_token *t, int i) {
  if (t[i].type == JSON_STRING) {
    char *s = malloc(t[i].size + 1);
    if (s && json_get_string(body, t, i, s, t[i].size + 1, NULL, 0) == 0)
      fputs(s, stdout);
    free(s);
  } else {
    printf("%.*s", (int)(t[i].end - t[i].start), body + t[i].start);
  }
}

/* One list entry on one line: an object's values separated by two spaces
 * (non-string values as key=value, times — "since", "*_at" — as dates), or
 * a scalar. */
static void print_entry(const char *body, const json_token *t, int e) {
  if (t[e].type != JSON_OBJECT) {
    print_scalar(body, t, e);
    fputc('\n', stdout);
    return;
  }
  bool first = true;
  for (int k = json_first_child(t, e); k >= 0; k = json_next_sibling(t, e, k)) {
    int v = json_next_sibling(t, e, k);
    if (v < 0) break;
    if (t[v].type == JSON_STRING && t[v].size == 0) {
      k = v;
      continue;
    }
    if (!first) fputs("  ", stdout);
    first = false;
    size_t klen = (size_t)(t[k].end - t[k].start);
    bool is_time = t[v].type == JSON_NUMBER &&
                   (json_string_eq(body, t, k, "since", 5) ||
                    (klen > 3 && memcmp(body + t[k].end - 3, "_at", 3) == 0));
    if (t[v].type != JSON_STRING) {
      print_scalar(body, t, k);
      fputc('=', stdout);
    }
    if (is_time) {
      char num[32], when[48];
      snprintf(num, sizeof num, "%.*s", (int)(t[v].end - t[v].start), body + t[v].start);
      human_time(num, when, sizeof when);
      fputs(when, stdout);
    } else {
      print_scalar(body, t, v);
    }
    k = v;
  }
  fputc('\n', stdout);
}

/* Prints an answer for people: "state: X" lines, a profile as "field: value"
 * lines, each list as "name (N):" and one line per entry; {} as "ok". */
static void print_text(const tsr_reply *r) {
  size_t cap = r->body_len / 2 + 8;
  json_token *t = malloc(cap * sizeof *t);
  if (!t || json_parse(r->body, r->body_len, t, cap, NULL) <= 0 ||
      t[0].type != JSON_OBJECT)
    die("bad_response", "unparsable answer");
  if (t[0].size == 0) printf("ok\n");
  for (int k = json_first_child(t, 0); k >= 0; k = json_next_sibling(t, 0, k)) {
    int v = json_next_sibling(t, 0, k);
    if (v < 0) break;
    if (t[v].type == JSON_ARRAY) {
      print_scalar(r->body, t, k);
      printf(" (%u):\n", (unsigned)t[v].size);
      for (int e = json_first_child(t, v); e >= 0; e = json_next_sibling(t, v, e)) {
        fputs("  ", stdout);
        print_entry(r->body, t, e);
      }
    } else if (t[v].type == JSON_OBJECT) {
      for (int f = json_first_child(t, v); f >= 0; f = json_next_sibling(t, v, f)) {
        int fv = json_next_sibling(t, v, f);
        if (fv < 0) break;
        print_scalar(r->body, t, f);
        fputs(": ", stdout);
        print_scalar(r->body, t, fv);
        fputc('\n', stdout);
        f = fv;
      }
    } else {
      print_scalar(r->body, t, k);
      fputs(": ", stdout);
      print_scalar(r->body, t, v);
      fputc('\n', stdout);
    }
    k = v;
  }
  free(t);
}

/* Finishes a call: error line and exit 1, or the answer on stdout. */
static int finish(int rc, tsr_reply *r, const char *what) {
  if (rc == TSR_ESTATE && !r->done) die("state", "not logged in");
  if (rc) die_call(rc, r, what);
  if (json_out)
    print_body(r);
  else
    print_text(r);
  tsr_reply_clear(r);
  return 0;
}

/* A generic call; fmt builds the path, whose %s arguments must be escaped. */
static int call(tsr_client *c, const char *what, const char *method, const char *body,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int call(tsr_client *c, const char *what, const char *method, const char *body,
                const char *fmt, ...) {
  char path[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(path, sizeof path, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof path) die("usage", "%s: argument too long", what);
  tsr_reply r = {0};
  return finish(tsr_call_sync(c, method, path, body, &r), &r, what);
}

/* A key escaped for a path, in a static buffer (one per slot). */
static const char *esc(const char *key, int slot) {
  static char out[2][620];
  if (strlen(key) > 200 || tsr_path_escape(key, out[slot], sizeof out[slot]) < 0)
    die("usage", "%s: too long", key);
  return out[slot];
}

static int on_off(const char *opt, const char *v) {
  if (!strcmp(v, "on")) return 1;
  if (!strcmp(v, "off")) return 0;
  die("usage", "%s takes on or off", opt);
}

static int cmd_profile(tsr_client *c, int argc, char **argv) {
  if (argc < 2) die("usage", "profile set|show|delete APP ...");
  const char *sub = argv[0], *app = need_app(argv[1]);
  tsr_reply r = {0};
  if (!strcmp(sub, "show")) {
    if (argc > 3) die("usage", "profile show APP [WHO]");
    return finish(tsr_profile_get_sync(c, app, argc == 3 ? argv[2] : NULL, &r), &r,
                  "profile show");
  }
  if (!strcmp(sub, "delete")) {
    if (argc != 2) die("usage", "profile delete APP");
    return call(c, "profile delete", "DELETE", NULL, "/v1/apps/%s/profile", app);
  }
  if (strcmp(sub, "set")) die("usage", "unknown profile subcommand %s", sub);
  tsr_profile p = {0};
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--handle") || !strcmp(o, "--username"))
      p.key = optval(argc, argv, &i);
    else if (!strcmp(o, "--name"))
      p.name = optval(argc, argv, &i);
    else if (!strcmp(o, "--bio") || !strcmp(o, "--about"))
      p.about = optval(argc, argv, &i);
    else if (!strcmp(o, "--private"))
      p.private_account = on_off(o, optval(argc, argv, &i));
    else if (!strcmp(o, "--page"))
      p.page = on_off(o, optval(argc, argv, &i));
    else if (!strcmp(o, "--category"))
      p.category = optval(argc, argv, &i);
    else if (!strcmp(o, "--hours"))
      p.hours = optval(argc, argv, &i);
    else if (!strcmp(o, "--website"))
      p.website = optval(argc, argv, &i);
    else
      die("usage", "profile set: unknown argument %s", o);
  }
  if (strcmp(app, "chat") && !p.key)
    die("usage", "profile set %s needs --%s", app,
        strcmp(app, "social") ? "username" : "handle");
  return finish(tsr_profile_put_sync(c, app, &p, &r), &r, "profile set");
}

static int cmd_search(tsr_client *c, int argc, char **argv) {
  if (argc != 2) die("usage", "search APP PREFIX");
  tsr_reply r = {0};
  return finish(tsr_search_sync(c, need_app(argv[0]), argv[1], 0, &r), &r, "search");
}

/* contacts [import NUMBER... | import --file F] */
static int cmd_contacts(tsr_client *c, int argc, char **argv) {
  if (argc == 0) return call(c, "contacts", "GET", NULL, "/v1/apps/chat/contacts");
  if (strcmp(argv[0], "import")) die("usage", "contacts [import NUMBER...|--file F]");
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "numbers");
  json_write_array_begin(&w);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--file")) {
      const char *path = optval(argc, argv, &i);
      FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
      if (!f) die("usage", "cannot open %s: %s", path, strerror(errno));
      char line[256];
      while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *s = line + strspn(line, " \t");
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
        if (n && s[0] != '#') json_write_string(&w, s);
      }
      if (f != stdin) fclose(f);
    } else {
      json_write_string(&w, argv[i]);
    }
  }
  json_write_array_end(&w);
  json_write_object_end(&w);
  if (json_writer_finish(&w) || buf_append(&b, "", 1))
    die("local", "contacts: out of memory");
  int rc =
      call(c, "contacts import", "POST", (const char *)b.ptr, "/v1/apps/chat/contacts");
  buf_free(&b);
  return rc;
}

static int cmd_follow_requests(tsr_client *c, int argc, char **argv) {
  if (argc == 0)
    return call(c, "follow-requests", "GET", NULL, "/v1/apps/social/follow-requests");
  if (argc != 2 || (strcmp(argv[0], "approve") && strcmp(argv[0], "decline")))
    die("usage", "follow-requests [approve|decline HANDLE]");
  return call(c, "follow-requests", "POST", "{}", "/v1/apps/social/follow-requests/%s/%s",
              esc(argv[1], 0), argv[0]);
}

static int cmd_friend(tsr_client *c, int argc, char **argv) {
  if (argc != 2) die("usage", "friend request|accept|decline|remove USERNAME");
  const char *u = esc(argv[1], 0);
  if (!strcmp(argv[0], "request"))
    return call(c, "friend", "POST", "{}", "/v1/apps/messenger/friend-requests/%s", u);
  if (!strcmp(argv[0], "accept") || !strcmp(argv[0], "decline"))
    return call(c, "friend", "POST", "{}", "/v1/apps/messenger/friend-requests/%s/%s", u,
                argv[0]);
  if (!strcmp(argv[0], "remove"))
    return call(c, "friend", "DELETE", NULL, "/v1/apps/messenger/friends/%s", u);
  die("usage", "friend request|accept|decline|remove USERNAME");
}

static int cmd_page(tsr_client *c, int argc, char **argv) {
  if (argc != 2) die("usage", "page follow|unfollow|followers USERNAME");
  const char *u = esc(argv[1], 0);
  if (!strcmp(argv[0], "follow"))
    return call(c, "page", "POST", "{}", "/v1/apps/messenger/pages/%s/follow", u);
  if (!strcmp(argv[0], "unfollow"))
    return call(c, "page", "DELETE", NULL, "/v1/apps/messenger/pages/%s/follow", u);
  if (!strcmp(argv[0], "followers"))
    return call(c, "page", "GET", NULL, "/v1/apps/messenger/pages/%s/followers", u);
  die("usage", "page follow|unfollow|followers USERNAME");
}

static int cmd_block(tsr_client *c, bool block, int argc, char **argv) {
  if (argc != 2) die("usage", "%s APP TARGET", block ? "block" : "unblock");
  const char *app = need_app(argv[0]);
  if (!block)
    return call(c, "unblock", "DELETE", NULL, "/v1/blocks/%s/%s", app, esc(argv[1], 0));
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "app");
  json_write_string(&w, app);
  json_write_key(&w, "target");
  json_write_string(&w, argv[1]);
  json_write_object_end(&w);
  if (json_writer_finish(&w) || buf_append(&b, "", 1))
    die("local", "block: out of memory");
  int rc = call(c, "block", "POST", (const char *)b.ptr, "/v1/blocks");
  buf_free(&b);
  return rc;
}

static int cmd_phone(tsr_client *c, int argc, char **argv) {
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  const char *path;
  if (argc == 2 && !strcmp(argv[0], "code")) {
    path = "/v1/phone/codes";
  } else if (argc == 3 && !strcmp(argv[0], "verify")) {
    path = "/v1/phone/verify";
    json_write_key(&w, "code");
    json_write_string(&w, argv[2]);
  } else {
    die("usage", "phone code PHONE | phone verify PHONE CODE");
  }
  json_write_key(&w, "phone");
  json_write_string(&w, argv[1]);
  json_write_object_end(&w);
  if (json_writer_finish(&w) || buf_append(&b, "", 1))
    die("local", "phone: out of memory");
  int rc = call(c, "phone", "POST", (const char *)b.ptr, "%s", path);
  buf_free(&b);
  return rc;
}

/* The JSON text of a writer's buffer, NUL-terminated, or die. */
static const char *finish_body(json_writer *w, buf_t *b, const char *what) {
  if (json_writer_finish(w) || buf_append(b, "", 1))
    die("local", "%s: out of memory", what);
  return (const char *)b->ptr;
}

/* reachability APP | reachability APP set FROM_APP everyone|graph|nobody */
static int cmd_reachability(tsr_client *c, int argc, char **argv) {
  if (argc == 1)
    return call(c, "reachability", "GET", NULL, "/v1/apps/%s/reachability",
                need_app(argv[0]));
  if (argc != 4 || strcmp(argv[1], "set"))
    die("usage", "reachability APP [set FROM_APP everyone|graph|nobody]");
  const char *app = need_app(argv[0]), *from = need_app(argv[2]), *rule = argv[3];
  if (strcmp(rule, "everyone") && strcmp(rule, "graph") && strcmp(rule, "nobody"))
    die("usage", "unknown rule %s (everyone, graph or nobody)", rule);
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "from");
  json_write_object_begin(&w);
  json_write_key(&w, from);
  json_write_string(&w, rule);
  json_write_object_end(&w);
  json_write_object_end(&w);
  int rc = call(c, "reachability", "PUT", finish_body(&w, &b, "reachability"),
                "/v1/apps/%s/reachability", app);
  buf_free(&b);
  return rc;
}

/* reach FROM_APP TO_APP TARGET: "allowed", or "request sent: ID". */
static int cmd_reach(tsr_client *c, int argc, char **argv) {
  if (argc != 3) die("usage", "reach FROM_APP TO_APP TARGET");
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_object_begin(&w);
  json_write_key(&w, "from_app");
  json_write_string(&w, need_app(argv[0]));
  json_write_key(&w, "to_app");
  json_write_string(&w, need_app(argv[1]));
  json_write_key(&w, "to");
  json_write_string(&w, argv[2]);
  json_write_object_end(&w);
  tsr_reply r = {0};
  int rc = tsr_call_sync(c, "POST", "/v1/reach", finish_body(&w, &b, "reach"), &r);
  buf_free(&b);
  if (rc == TSR_ESTATE && !r.done) die("state", "not logged in");
  if (rc) die_call(rc, &r, "reach");
  if (json_out) {
    print_body(&r);
  } else {
    json_token t[16];
    bool allowed = false;
    char id[128] = "";
    if (json_parse(r.body, r.body_len, t, 16, NULL) <= 0 || t[0].type != JSON_OBJECT)
      die("bad_response", "unparsable reach answer");
    int a = json_object_get(r.body, t, 0, "allowed");
    if (a < 0 || json_get_bool(t, a, &allowed) != 0)
      die("bad_response", "reach answer without allowed");
    json_str(r.body, t, 0, "request_id", id, sizeof id);
    if (allowed)
      printf("allowed\n");
    else
      printf("request sent: %s\n", id);
  }
  tsr_reply_clear(&r);
  return 0;
}

/* requests | requests accept|decline|block ID */
static int cmd_requests(tsr_client *c, int argc, char **argv) {
  if (argc == 0) return call(c, "requests", "GET", NULL, "/v1/requests");
  if (argc != 2 || (strcmp(argv[0], "accept") && strcmp(argv[0], "decline") &&
                    strcmp(argv[0], "block")))
    die("usage", "requests [accept|decline|block ID]");
  return call(c, "requests", "POST", "{}", "/v1/requests/%s/%s", esc(argv[1], 0),
              argv[0]);
}

/* --- realtime session ------------------------------------------------------ */

static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static int stop_requested(void *arg) {
  (void)arg;
  return stop_flag != 0;
}

/* One push per line: raw CR/LF of the JSON text are whitespace (strings
 * escape theirs), so they become spaces. */
static void print_push(void *arg, const char *json, size_t len) {
  (void)arg;
  for (size_t i = 0; i < len; i++)
    fputc(json[i] == '\n' || json[i] == '\r' ? ' ' : json[i], stdout);
  fputc('\n', stdout);
  fflush(stdout);
}

static tsr_ws *ws_open(tsr_client *c, const tsr_ws_config *cfg) {
  tsr_ws *s = NULL;
  int rc = tsr_ws_new(c, cfg, &s);
  if (rc == TSR_ESTATE) die("state", "not logged in");
  if (rc) die_call(rc, NULL, "ws");
  return s;
}

/* ws call OP [JSON-FIELDS] | ws listen [--seconds N] */
static int cmd_ws(tsr_client *c, int argc, char **argv) {
  if (argc >= 2 && argc <= 3 && !strcmp(argv[0], "call")) {
    tsr_ws *s = ws_open(c, NULL);
    tsr_reply r = {0};
    int rc = tsr_ws_call_sync(s, argv[1], argc == 3 ? argv[2] : NULL, &r);
    tsr_ws_free(s);
    if (rc == TSR_EINVAL && !r.done)
      die("usage", "ws call: JSON-FIELDS must be the inside of a JSON object, e.g. "
                   "'\"conversation\":\"ID\",\"after\":0'");
    if (rc == TSR_ELIMIT && !r.done) die("usage", "ws call: message too large");
    if (rc) die_call(rc, &r, "ws call");
    if (json_out)
      print_body(&r);
    else
      print_text(&r);
    tsr_reply_clear(&r);
    return 0;
  }
  if (argc >= 1 && !strcmp(argv[0], "listen")) {
    long seconds = -1;
    for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "--seconds")) {
        const char *v = optval(argc, argv, &i);
        char *end;
        errno = 0;
        seconds = strtol(v, &end, 10);
        if (errno || *end || !*v || seconds < 0 || seconds > 2000000)
          die("usage", "--seconds takes a number of seconds");
      } else {
        die("usage", "ws listen: unknown argument %s", argv[i]);
      }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    tsr_ws_config cfg = {.on_push = print_push};
    tsr_ws *s = ws_open(c, &cfg);
    /* A first round trip, so that an unreachable server or a refused
     * token is an error line rather than silence. */
    tsr_reply r = {0};
    int rc = tsr_ws_call_sync(s, "ping", NULL, &r);
    if (rc) {
      tsr_ws_free(s);
      die_call(rc, &r, "ws listen");
    }
    tsr_reply_clear(&r);
    rc = tsr_ws_run(s, seconds < 0 ? -1 : (int)(seconds * 1000), stop_requested, NULL);
    tsr_ws_free(s);
    if (rc < 0) die("local", "ws listen: %s", tsr_strerror(rc));
    return 0;
  }
  die("usage", "ws call OP [JSON-FIELDS] | ws listen [--seconds N]");
}

/* --- conversations (chat) ---------------------------------------------------- */

/* One JSON string value (escaped) to stdout. */
static void put_json_string(const char *s) {
  buf_t b;
  buf_init(&b);
  json_writer w;
  json_writer_init(&w, &b, 0);
  json_write_string(&w, s);
  if (json_writer_finish(&w) == 0) fwrite(b.ptr, 1, b.len, stdout);
  buf_free(&b);
}

static void ms_time(int64_t ms, char *out, size_t cap) {
  time_t tt = (time_t)(ms / 1000);
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
    snprintf(out, cap, "%lld", (long long)ms);
}

static const char *const kind_names[] = {"text",       "edit",    "delete",
                                         "reaction",   "receipt", "typing",
                                         "attachment", "title",   "unsupported"};

static const char *kind_name(int k) {
  return k >= 0 && k <= TSR_KIND_UNSUPPORTED ? kind_names[k] : "unsupported";
}

/* Text on one line: CR/LF shown as spaces. */
static void put_line(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) fputc(s[i] == '\n' || s[i] == '\r' ? ' ' : s[i], stdout);
}

/* The kind-specific members of m as JSON (after a comma). */
static void put_json_kind(const tsr_message *m) {
  printf(",\"kind\":\"%s\"", kind_name(m->kind));
  if (m->reply_to) printf(",\"reply_to\":%llu", (unsigned long long)m->reply_to);
  if (m->target) printf(",\"target\":%llu", (unsigned long long)m->target);
  if (m->kind == TSR_KIND_REACTION) {
    fputs(",\"emoji\":", stdout);
    put_json_string(m->emoji);
    printf(",\"remove\":%s", m->remove ? "true" : "false");
  }
  if (m->kind == TSR_KIND_RECEIPT)
    printf(",\"receipt\":\"%s\"", m->receipt == TSR_RECEIPT_READ ? "read" : "delivered");
  if (m->kind == TSR_KIND_TYPING) printf(",\"typing\":%s", m->typing ? "true" : "false");
  if (m->kind == TSR_KIND_ATTACHMENT) {
    fputs(",\"descriptor\":", stdout);
    put_json_string(m->descriptor);
  }
  if (m->edited_at_ms) printf(",\"edited_at\":%lld", (long long)m->edited_at_ms);
  if (m->deleted) fputs(",\"deleted\":true", stdout);
}

/* What m says, for people, on the rest of a line. */
static void put_human(const tsr_message *m) {
  switch (m->kind) {
  case TSR_KIND_EDIT:
    printf("edited %llu: ", (unsigned long long)m->target);
    put_line(m->text, m->text_len);
    break;
  case TSR_KIND_DELETE: printf("deleted %llu", (unsigned long long)m->target); break;
  case TSR_KIND_REACTION:
    printf("%s %s to %llu", m->remove ? "took back" : "reacted", m->emoji,
           (unsigned long long)m->target);
    break;
  case TSR_KIND_RECEIPT:
    printf("%s up to %llu", m->receipt == TSR_RECEIPT_READ ? "read" : "received",
           (unsigned long long)m->target);
    break;
  case TSR_KIND_TYPING: fputs(m->typing ? "is typing" : "stopped typing", stdout); break;
  case TSR_KIND_TITLE:
    fputs("renamed the conversation: ", stdout);
    put_line(m->text, m->text_len);
    break;
  case TSR_KIND_UNSUPPORTED: fputs("(unsupported message)", stdout); break;
  default:
    if (m->deleted) {
      fputs("message deleted", stdout);
      break;
    }
    if (m->reply_to) printf("(reply to %llu) ", (unsigned long long)m->reply_to);
    if (m->kind == TSR_KIND_ATTACHMENT) {
      char what[48];
      attach_describe(m->descriptor, m->descriptor_len, what, sizeof what);
      printf("[%s] ", what);
    }
    put_line(m->text, m->text_len);
    if (m->edited_at_ms) fputs(" (edited)", stdout);
  }
}

/* A message on one line. */
static void print_message(const tsr_message *m, bool with_conv) {
  if (json_out) {
    printf("{\"conversation\":\"%s\",\"seq\":%llu,\"at\":%lld,\"sender_account\":\"%s\","
           "\"sender_device\":\"%s\",\"own\":%s,\"text\":",
           m->conversation, (unsigned long long)m->seq, (long long)m->at_ms,
           m->sender_account, m->sender_device, m->own ? "true" : "false");
    put_json_string(m->text);
    put_json_kind(m);
    fputs("}\n", stdout);
  } else {
    char when[40];
    ms_time(m->at_ms, when, sizeof when);
    if (with_conv) printf("%s\t", m->conversation);
    printf("%llu\t%s\t%s%s\t", (unsigned long long)m->seq, when, m->sender_account,
           m->own ? " (you)" : "");
    put_human(m);
    fputc('\n', stdout);
  }
  fflush(stdout);
}

static void on_chat_message(void *arg, const tsr_message *m) {
  (void)arg;
  print_message(m, true);
}

static void on_chat_joined(void *arg, const char *conv, const char *app,
                           const char *kind) {
  (void)arg;
  if (json_out)
    printf("{\"joined\":\"%s\",\"app\":\"%s\",\"kind\":\"%s\"}\n", conv, app, kind);
  else
    printf("joined %s (%s, %s)\n", conv, app, kind);
  fflush(stdout);
}

/* What chat read shows besides the messages: reactions and receipts. */
typedef struct {
  bool first;
  uint64_t last;           /* the last seq shown */
  const char *me;          /* this account */
  tsr_reaction *reactions; /* copies (strings strdup'ed) */
  size_t n_reactions;
  uint64_t delivered, read; /* by every other account that sent receipts: the least */
  bool any_receipt;
} read_ctx;

static void on_read_reaction(void *arg, const tsr_reaction *r) {
  read_ctx *x = arg;
  tsr_reaction *n = realloc(x->reactions, (x->n_reactions + 1) * sizeof *n);
  if (!n) return;
  x->reactions = n;
  n[x->n_reactions] = *r;
  n[x->n_reactions].account = strdup(r->account);
  n[x->n_reactions].emoji = strdup(r->emoji);
  if (n[x->n_reactions].account && n[x->n_reactions].emoji) x->n_reactions++;
}

static void on_read_receipt(void *arg, const tsr_receipt_state *r) {
  read_ctx *x = arg;
  if (!strcmp(r->account, x->me)) return;
  if (!x->any_receipt || r->delivered_up_to < x->delivered)
    x->delivered = r->delivered_up_to;
  if (!x->any_receipt || r->read_up_to < x->read) x->read = r->read_up_to;
  x->any_receipt = true;
}

static void on_read_message(void *arg, const tsr_message *m) {
  read_ctx *x = arg;
  if (json_out && !x->first) fputc(',', stdout);
  x->first = false;
  x->last = m->seq;
  /* Own messages: delivered / read by every other account with receipts. */
  const char *mark = !m->own || !x->any_receipt ? ""
                     : x->read >= m->seq        ? "read"
                     : x->delivered >= m->seq   ? "delivered"
                                                : "";
  if (json_out) {
    printf("{\"seq\":%llu,\"at\":%lld,\"sender_account\":\"%s\",\"sender_device\":\"%s\","
           "\"own\":%s,\"text\":",
           (unsigned long long)m->seq, (long long)m->at_ms, m->sender_account,
           m->sender_device, m->own ? "true" : "false");
    put_json_string(m->text);
    put_json_kind(m);
    if (mark[0]) printf(",\"%s\":true", mark);
    fputs(",\"reactions\":[", stdout);
    bool f = true;
    for (size_t i = 0; i < x->n_reactions; i++) {
      if (x->reactions[i].target != m->seq) continue;
      printf("%s{\"account\":\"%s\",\"emoji\":", f ? "" : ",", x->reactions[i].account);
      put_json_string(x->reactions[i].emoji);
      fputc('}', stdout);
      f = false;
    }
    fputs("]}", stdout);
  } else {
    char when[40];
    ms_time(m->at_ms, when, sizeof when);
    printf("%llu\t%s\t%s%s\t", (unsigned long long)m->seq, when, m->sender_account,
           m->own ? " (you)" : "");
    put_human(m);
    for (size_t i = 0; i < x->n_reactions; i++)
      if (x->reactions[i].target == m->seq) printf(" [%s]", x->reactions[i].emoji);
    if (mark[0]) printf(" (%s)", mark);
    fputc('\n', stdout);
  }
}

static void on_chat_update(void *arg, const tsr_message *m) {
  (void)arg;
  print_message(m, true);
}

/* A notice (tsr_notice): "!" in place of a seq, then the sentence. */
static void print_notice(const tsr_notice *n, bool with_conv, bool json_first) {
  if (json_out) {
    if (!json_first) fputc(',', stdout);
    printf("{\"conversation\":\"%s\",\"notice\":\"%s\",\"after_seq\":%llu,\"at\":%lld,"
           "\"account\":\"%s\",\"text\":",
           n->conversation, n->kind, (unsigned long long)n->after_seq,
           (long long)n->at_ms, n->account);
    put_json_string(n->text);
    fputc('}', stdout);
  } else {
    char when[40];
    ms_time(n->at_ms, when, sizeof when);
    if (with_conv) printf("%s\t", n->conversation);
    printf("!\t%s\tnotice\t%s\n", when, n->text);
  }
}

static void on_chat_notice(void *arg, const tsr_notice *n) {
  (void)arg;
  print_notice(n, true, true);
  if (json_out) fputc('\n', stdout);
  fflush(stdout);
}

static void on_read_notice(void *arg, const tsr_notice *n) {
  bool *first = arg;
  print_notice(n, false, *first);
  *first = false;
}

/* A session for conversations; listen: print messages and joins. */
static tsr_chat *chat_open(tsr_client *c, bool listen) {
  tsr_chat_config cfg = {0};
  if (listen) {
    cfg.on_message = on_chat_message;
    cfg.on_joined = on_chat_joined;
    cfg.on_update = on_chat_update;
    cfg.on_typing = on_chat_update;
    cfg.on_notice = on_chat_notice;
  }
  tsr_chat *h = NULL;
  int rc = tsr_chat_new(c, &cfg, &h);
  if (rc == TSR_ESTATE) die("state", "not logged in");
  if (rc) die_call(rc, NULL, "chat");
  return h;
}

/* A device without KeyPackages on the server cannot be added anywhere. */
static void ensure_keypackages(tsr_client *c) {
  tsr_reply r = {0};
  int rc = tsr_keypackages_replenish_sync(c, 1, 20, &r);
  if (rc) die_call(rc, &r, "keys upload");
  tsr_reply_clear(&r);
}

/* Joins what is waiting, syncs every conversation, sends the outbox. */
static void chat_refresh(tsr_chat *h) {
  tsr_reply r = {0};
  int rc = tsr_conversations_refresh_sync(h, &r);
  if (rc) die_call(rc, &r, "conversations");
  tsr_reply_clear(&r);
}

static int chat_create(tsr_client *c, int argc, char **argv) {
  const char *app = NULL, *title = NULL;
  bool group = false;
  tsr_member m[64];
  size_t n = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--app")) {
      app = need_app(optval(argc, argv, &i));
    } else if (!strcmp(argv[i], "--title")) {
      title = optval(argc, argv, &i);
      group = true;
    } else if (!strcmp(argv[i], "--group")) {
      group = true;
    } else if (!strcmp(argv[i], "--with") || !strcmp(argv[i], "--with-account")) {
      bool by_id = !strcmp(argv[i], "--with-account");
      char *v = (char *)optval(argc, argv, &i);
      char *colon = strrchr(v, ':');
      if (!colon || colon == v || n >= 63)
        die("usage", "%s (at most 63 members)",
            by_id ? "--with-account ACCOUNT_ID:APP" : "--with WHO:APP");
      *colon = '\0';
      if (by_id && strlen(v) != TSR_ID_B64_SIZE - 1)
        die("usage", "--with-account: %s is not an account id (22 characters)", v);
      m[n] = (tsr_member){.account = by_id ? v : NULL,
                          .app = need_app(colon + 1),
                          .key = by_id ? NULL : v};
      n++;
    } else {
      die("usage", "chat create: unknown argument %s", argv[i]);
    }
  }
  if (!app || n == 0)
    die("usage",
        "chat create --app APP --with WHO:APP... [--with-account ACCOUNT_ID:APP]");
  ensure_keypackages(c);
  tsr_chat *h = chat_open(c, false);
  chat_refresh(h);
  tsr_conversation_params p = {app, group || n > 1 ? "group" : "direct", m, n};
  tsr_reply r = {0};
  int rc = tsr_conversation_create_sync(h, &p, &r);
  if (rc == TSR_EINVAL && !r.done)
    die("usage", "chat create: bad profile, account id or app, or a member given twice");
  if (rc) die_call(rc, &r, "chat create");
  size_t cap = r.body_len / 2 + 8;
  json_token *t = malloc(cap * sizeof *t);
  char id[TSR_ID_B64_SIZE] = "";
  if (t && json_parse(r.body, r.body_len, t, cap, NULL) > 0)
    json_str(r.body, t, 0, "conversation", id, sizeof id);
  free(t);
  /* The title travels inside MLS, as the group's first message. */
  if (title) {
    tsr_reply tr = {0};
    rc = tsr_conversation_rename_sync(h, id, title, &tr);
    if (rc) die_call(rc, &tr, "chat create (title)");
    tsr_reply_clear(&tr);
  }
  tsr_chat_free(h);
  if (json_out)
    print_body(&r);
  else
    printf("%s\n", id);
  tsr_reply_clear(&r);
  return 0;
}

static int chat_list(tsr_client *c) {
  tsr_chat *h = chat_open(c, false);
  chat_refresh(h);
  tsr_chat_free(h);
  tsr_conversation_info *v = NULL;
  size_t n = 0;
  int rc = tsr_conversations_local(c, &v, &n);
  if (rc) die_call(rc, NULL, "chat list");
  if (json_out) fputs("{\"conversations\":[", stdout);
  for (size_t i = 0; i < n; i++) {
    if (json_out) {
      printf("%s{\"conversation\":\"%s\",\"id\":\"%s\",\"app\":\"%s\",\"kind\":\"%s\","
             "\"state\":\"%s\",\"devices\":%llu,\"last_seq\":%llu,\"outbox\":%llu,"
             "\"title\":",
             i ? "," : "", v[i].id, v[i].id, v[i].app, v[i].kind, v[i].state,
             (unsigned long long)v[i].members, (unsigned long long)v[i].last_seq,
             (unsigned long long)v[i].outbox);
      put_json_string(v[i].title);
      fputc('}', stdout);
    } else {
      printf("%s\t%s\t%s\t%s\tdevices=%llu\tlast_seq=%llu\toutbox=%llu%s%s\n", v[i].id,
             v[i].app, v[i].kind, v[i].state, (unsigned long long)v[i].members,
             (unsigned long long)v[i].last_seq, (unsigned long long)v[i].outbox,
             v[i].title[0] ? "\t" : "", v[i].title);
    }
  }
  if (json_out) fputs("]}\n", stdout);
  free(v);
  return 0;
}

/* A seq given on the command line (1 .. 2^63-1). */
static uint64_t need_seq(const char *v, const char *what) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || *end || !*v || *v == '-' || n == 0 || n > INT64_MAX)
    die("usage", "%s: %s is not a seq", what, v);
  return (uint64_t)n;
}

/* The answer of one of the sends: "sent, seq N" (or the body in JSON). */
static int chat_sent(int rc, tsr_reply *r, const char *what, const char *conv) {
  if (rc == TSR_ENOTFOUND && !r->done)
    die("not_found", "%s: no conversation %s here, or no such message", what, conv);
  if (rc == TSR_ESENDER && !r->done)
    die("forbidden", "%s: only your own messages can be changed", what);
  if (rc == TSR_ESTATE && !r->done) die("state", "%s: the message is deleted", what);
  if (rc == TSR_ELIMIT && !r->done)
    die("limit", "%s: too many typing messages in a row; send a message first", what);
  if (rc == TSR_EINVAL && !r->done)
    die("usage", "%s: bad conversation id, or empty or too long text", what);
  if (rc == 1) { /* nothing was due (a message request not accepted) */
    if (json_out)
      printf("{\"conversation\":\"%s\",\"sent\":false}\n", conv);
    else
      printf("not sent (message request)\n");
    return 0;
  }
  if (rc) die_call(rc, r, what);
  if (json_out) {
    print_body(r);
  } else if (r->body && strstr(r->body, "\"transient\"")) {
    printf("sent\n");
  } else {
    size_t cap = r->body_len / 2 + 8;
    json_token *t = malloc(cap * sizeof *t);
    char seq[24] = "?";
    if (t && json_parse(r->body, r->body_len, t, cap, NULL) > 0)
      json_num(r->body, t, 0, "seq", seq, sizeof seq);
    free(t);
    printf("sent, seq %s\n", seq);
  }
  tsr_reply_clear(r);
  return 0;
}

/* chat send|edit|delete|react|rename|typing (argv[0]) with its arguments. */
static int chat_change(tsr_client *c, int argc, char **argv) {
  const char *op = argv[0], *conv = argc > 1 ? argv[1] : "";
  uint64_t reply = 0;
  bool remove = false;
  int n = argc;
  char what[32];
  snprintf(what, sizeof what, "chat %s", op);
  if (!strcmp(op, "send") && argc == 5 && !strcmp(argv[3], "--reply")) {
    reply = need_seq(argv[4], "--reply");
    n = 3;
  }
  if (!strcmp(op, "react") && argc == 5 && !strcmp(argv[4], "--remove")) {
    remove = true;
    n = 4;
  }
  uint64_t seq = 0;
  bool ok = (!strcmp(op, "send") && n == 3) || (!strcmp(op, "edit") && n == 4) ||
            (!strcmp(op, "delete") && n == 3) || (!strcmp(op, "react") && n == 4) ||
            (!strcmp(op, "rename") && n == 3) ||
            (!strcmp(op, "typing") && n == 3 &&
             (!strcmp(argv[2], "on") || !strcmp(argv[2], "off")));
  if (!ok)
    die("usage",
        "chat send CONV TEXT [--reply SEQ] | edit CONV SEQ TEXT | delete CONV SEQ"
        " | react CONV SEQ EMOJI [--remove] | rename CONV TITLE"
        " | typing CONV on|off");
  if (!strcmp(op, "edit") || !strcmp(op, "delete") || !strcmp(op, "react"))
    seq = need_seq(argv[2], what);
  tsr_chat *h = chat_open(c, false);
  tsr_reply r = {0};
  int rc;
  if (!strcmp(op, "send"))
    rc = tsr_send_reply_sync(h, conv, argv[2], reply, &r);
  else if (!strcmp(op, "edit"))
    rc = tsr_send_edit_sync(h, conv, seq, argv[3], &r);
  else if (!strcmp(op, "delete"))
    rc = tsr_send_delete_sync(h, conv, seq, &r);
  else if (!strcmp(op, "react"))
    rc = tsr_send_reaction_sync(h, conv, seq, argv[3], remove, &r);
  else if (!strcmp(op, "rename"))
    rc = tsr_conversation_rename_sync(h, conv, argv[2], &r);
  else
    rc = tsr_send_typing_sync(h, conv, !strcmp(argv[2], "on"), &r);
  tsr_chat_free(h);
  return chat_sent(rc, &r, what, conv);
}

static int chat_send(tsr_client *c, const char *conv, const char *text) {
  tsr_chat *h = chat_open(c, false);
  tsr_reply r = {0};
  int rc = tsr_send_text_sync(h, conv, text, &r);
  tsr_chat_free(h);
  if (rc == TSR_ENOTFOUND && !r.done) die("not_found", "no conversation %s here", conv);
  if (rc == TSR_EINVAL && !r.done)
    die("usage", "chat send: bad conversation id or empty/too long text");
  if (rc) die_call(rc, &r, "chat send");
  if (json_out) {
    print_body(&r);
  } else {
    size_t cap = r.body_len / 2 + 8;
    json_token *t = malloc(cap * sizeof *t);
    char seq[24] = "?";
    if (t && json_parse(r.body, r.body_len, t, cap, NULL) > 0)
      json_num(r.body, t, 0, "seq", seq, sizeof seq);
    free(t);
    printf("sent, seq %s\n", seq);
  }
  tsr_reply_clear(&r);
  return 0;
}

/* Shows the conversation as it is now and, unless no_receipt, marks what
 * it showed as read (a read receipt). */
static int chat_read(tsr_client *c, const char *conv, bool no_receipt) {
  tsr_chat *h = chat_open(c, false);
  chat_refresh(h);
  tsr_session_info me = {0};
  tsr_client_session(c, &me);
  read_ctx x = {.first = true, .me = me.account_id};
  int rc = tsr_reactions_local(c, conv, on_read_reaction, &x);
  if (rc == 0) rc = tsr_receipts_local(c, conv, on_read_receipt, &x);
  if (rc == 0 && json_out) printf("{\"conversation\":\"%s\",\"messages\":[", conv);
  if (rc == 0) rc = tsr_messages_local(c, conv, 0, on_read_message, &x);
  for (size_t i = 0; i < x.n_reactions; i++) {
    free((char *)x.reactions[i].account);
    free((char *)x.reactions[i].emoji);
  }
  free(x.reactions);
  if (rc == TSR_ENOTFOUND) die("not_found", "no conversation %s here", conv);
  if (rc == TSR_EINVAL) die("usage", "chat read: bad conversation id");
  if (rc) die_call(rc, NULL, "chat read");
  /* What this device noticed (keys changed, devices not certified). */
  bool nfirst = true;
  if (json_out) fputs("],\"notices\":[", stdout);
  tsr_notices_local(c, conv, on_read_notice, &nfirst);
  if (json_out) fputs("]}\n", stdout);
  fflush(stdout);
  if (!no_receipt && x.last) {
    tsr_reply r = {0};
    rc = tsr_mark_read_sync(h, conv, x.last, &r);
    if (rc < 0) die_call(rc, &r, "chat read (read receipt)");
    tsr_reply_clear(&r);
  }
  tsr_chat_free(h);
  return 0;
}

static int chat_listen(tsr_client *c, int argc, char **argv) {
  long seconds = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seconds")) {
      const char *v = optval(argc, argv, &i);
      char *end;
      errno = 0;
      seconds = strtol(v, &end, 10);
      if (errno || *end || !*v || seconds < 0 || seconds > 2000000)
        die("usage", "--seconds takes a number of seconds");
    } else {
      die("usage", "chat listen: unknown argument %s", argv[i]);
    }
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  ensure_keypackages(c);
  tsr_chat *h = chat_open(c, true);
  chat_refresh(h); /* errors (server down, token refused) as an error line */
  int rc =
      tsr_chat_run(h, seconds < 0 ? -1 : (int)(seconds * 1000), stop_requested, NULL);
  tsr_chat_free(h);
  if (rc < 0) die("local", "chat listen: %s", tsr_strerror(rc));
  return 0;
}

static int chat_answer(tsr_client *c, const char *conv, bool accept) {
  tsr_chat *h = chat_open(c, false);
  tsr_reply r = {0};
  int rc = tsr_conversation_answer_sync(h, conv, accept, &r);
  tsr_chat_free(h);
  if (rc == TSR_EINVAL && !r.done) die("usage", "bad conversation id");
  if (rc) die_call(rc, &r, accept ? "chat accept" : "chat decline");
  if (json_out)
    print_body(&r);
  else
    printf("%s\n", accept ? "accepted" : "declined");
  tsr_reply_clear(&r);
  return 0;
}

static int cmd_chat(tsr_client *c, int argc, char **argv) {
  if (argc == 0 || (argc <= 2 && !strcmp(argv[0], "open")))
    return chat_tui(c, argc == 2 ? argv[1] : NULL);
  if (argc >= 1 && !strcmp(argv[0], "create")) return chat_create(c, argc, argv);
  int grc = argc >= 1 ? chat_group_command(c, argc, argv) : -1;
  if (grc >= 0) return grc;
  int arc = chat_attach_command(c, argc, argv);
  if (arc >= 0) return arc;
  if (argc == 1 && !strcmp(argv[0], "list")) return chat_list(c);
  if (argc == 3 && !strcmp(argv[0], "send")) return chat_send(c, argv[1], argv[2]);
  if (argc >= 1 && (!strcmp(argv[0], "send") || !strcmp(argv[0], "edit") ||
                    !strcmp(argv[0], "delete") || !strcmp(argv[0], "react") ||
                    !strcmp(argv[0], "rename") || !strcmp(argv[0], "typing")))
    return chat_change(c, argc, argv);
  if (argc == 2 && !strcmp(argv[0], "read")) return chat_read(c, argv[1], false);
  if (argc == 3 && !strcmp(argv[0], "read") && !strcmp(argv[2], "--no-receipt"))
    return chat_read(c, argv[1], true);
  if (argc >= 1 && !strcmp(argv[0], "listen")) return chat_listen(c, argc, argv);
  if (argc == 2 && (!strcmp(argv[0], "accept") || !strcmp(argv[0], "decline")))
    return chat_answer(c, argv[1], argv[0][0] == 'a');
  die("usage",
      "chat [open CONV]|create|list|send|edit|delete|react|rename|typing|read|listen|"
      "accept|decline|add|remove|leave|promote|demote|members|attach|save (see --help)");
}

/* Commands of the app graphs and blocks; -1 when cmd is none of them. */
static int app_command(tsr_client *c, const char *cmd, int n, char **rest) {
  if (!strcmp(cmd, "profile")) return cmd_profile(c, n, rest);
  if (!strcmp(cmd, "search")) return cmd_search(c, n, rest);
  if (!strcmp(cmd, "contacts")) return cmd_contacts(c, n, rest);
  if (!strcmp(cmd, "follow-requests")) return cmd_follow_requests(c, n, rest);
  if (!strcmp(cmd, "followers") || !strcmp(cmd, "following")) {
    if (n) die("usage", "%s takes no arguments", cmd);
    return call(c, cmd, "GET", NULL, "/v1/apps/social/%s", cmd);
  }
  if (!strcmp(cmd, "friend")) return cmd_friend(c, n, rest);
  if (!strcmp(cmd, "friends") || !strcmp(cmd, "friend-requests")) {
    if (n) die("usage", "%s takes no arguments", cmd);
    return call(c, cmd, "GET", NULL, "/v1/apps/messenger/%s", cmd);
  }
  if (!strcmp(cmd, "page")) return cmd_page(c, n, rest);
  if (!strcmp(cmd, "block") || !strcmp(cmd, "unblock"))
    return cmd_block(c, cmd[0] == 'b', n, rest);
  if (!strcmp(cmd, "blocks")) {
    if (n) die("usage", "blocks takes no arguments");
    return call(c, cmd, "GET", NULL, "/v1/blocks");
  }
  if (!strcmp(cmd, "phone")) return cmd_phone(c, n, rest);
  if (!strcmp(cmd, "reachability")) return cmd_reachability(c, n, rest);
  if (!strcmp(cmd, "reach")) return cmd_reach(c, n, rest);
  if (!strcmp(cmd, "requests")) return cmd_requests(c, n, rest);
  return -1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* TLS writes may raise it on a closed peer */
  tsr_client_config cfg = {0};
  const char *server = getenv("TSR_SERVER");
  cfg.state_path = getenv("TSR_STATE");
  if (!cfg.state_path || !*cfg.state_path) cfg.state_path = "tessera-state.db";
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--server"))
      server = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--state"))
      cfg.state_path = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--ca"))
      cfg.ca_file = optval(argc, argv, &i);
    else if (!strcmp(argv[i], "--tls"))
      cfg.use_tls = 1;
    else if (!strcmp(argv[i], "--json"))
      json_out = true;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return 0;
    } else
      die("usage", "unknown option %s (see --help)", argv[i]);
  }
  if (i >= argc) {
    fputs(usage, stderr);
    return 1;
  }
  char host[256] = "127.0.0.1";
  if (server && *server) {
    /* HOST:PORT, [V6]:PORT or HOST */
    const char *colon = strrchr(server, ':');
    const char *hs = server, *he = colon ? colon : server + strlen(server);
    if (server[0] == '[') {
      const char *rb = strchr(server, ']');
      if (!rb) die("usage", "bad --server %s", server);
      hs = server + 1;
      he = rb;
      colon = rb[1] == ':' ? rb + 1 : NULL;
    }
    if ((size_t)(he - hs) >= sizeof host || he == hs)
      die("usage", "bad --server %s", server);
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (colon) {
      char *end;
      errno = 0;
      long port = strtol(colon + 1, &end, 10);
      if (errno || *end || port < 1 || port > 65535)
        die("usage", "bad port in %s", server);
      cfg.port = (uint16_t)port;
    }
  }
  cfg.host = host;
  if (!cfg.port) cfg.port = cfg.use_tls ? 443 : 8080;
  tsr_client *c;
  int rc = tsr_client_new(&cfg, &c);
  if (rc == TSR_EUNSUPPORTED)
    die("state", "%s was written by a newer tessera", cfg.state_path);
  if (rc) die("local", "cannot open %s: %s", cfg.state_path, tsr_strerror(rc));
  const char *cmd = argv[i++];
  int n = argc - i;
  char **rest = argv + i;
  if (!strcmp(cmd, "register"))
    rc = cmd_register(c, n, rest);
  else if (!strcmp(cmd, "login"))
    rc = cmd_login(c, n, rest);
  else if (!strcmp(cmd, "logout"))
    rc = cmd_logout(c);
  else if (!strcmp(cmd, "devices"))
    rc = cmd_devices(c);
  else if (!strcmp(cmd, "whoami"))
    rc = cmd_whoami(c);
  else if (!strcmp(cmd, "safety-number"))
    rc = cmd_safety_number(c, n, rest);
  else if (!strcmp(cmd, "device"))
    rc = cmd_device(c, n, rest);
  else if (!strcmp(cmd, "keys"))
    rc = cmd_keys(c, n, rest);
  else if (!strcmp(cmd, "ws"))
    rc = cmd_ws(c, n, rest);
  else if (!strcmp(cmd, "chat"))
    rc = cmd_chat(c, n, rest);
  else if (!strcmp(cmd, "attach"))
    rc = cmd_attach(c, n, rest);
  else if ((rc = public_command(c, cmd, n, rest)) < 0 &&
           (rc = app_command(c, cmd, n, rest)) < 0)
    die("usage", "unknown command %s (see --help)", cmd);
  tsr_client_free(c);
  return rc;
}
