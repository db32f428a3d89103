/* What travels inside an MLS application message (docs/protocol.md, "What
 * is inside the MLS messages"): a versioned JSON envelope, one object
 *
 *   {"v":1,"kind":"text","body":"hi","reply_to":7}
 *
 * with a kind and the members of that kind. Internal to libtessera.
 *
 * Decoding is strict so that a plaintext has exactly one meaning: the
 * bytes must be one JSON object with nothing before or after it (not even
 * white space), valid UTF-8, no duplicate keys, no \u0000, "v" exactly 1.
 * A kind this version does not know (from a newer client) decodes as
 * CONTENT_UNSUPPORTED and is not an error; its other members are not
 * looked at. Members a known kind does not define are ignored (newer
 * clients may add optional members); the members it defines must have
 * their type and bounds.
 *
 * Ownership: content_decode fills a content whose strings point into
 * memory it owns; content_clear wipes and frees it. content_encode reads
 * the caller's strings (which need not be NUL-terminated) and appends to
 * the caller's buf_t. Pure otherwise: no global state, any thread. */
#ifndef TSR_CLIENT_CONTENT_H
#define TSR_CLIENT_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

#define CONTENT_VERSION 1
#define CONTENT_MAX_BODY 60000      /* text, edit body, caption */
#define CONTENT_MAX_EMOJI 64        /* bytes of one reaction */
#define CONTENT_MAX_DESCRIPTOR 4096 /* an attachment descriptor */
#define CONTENT_MAX_TITLE 256       /* a conversation title */
#define CONTENT_MAX_KIND 32         /* bytes of a kind name */
/* Largest envelope accepted: a body of CONTENT_MAX_BODY bytes escaped at
 * worst (6 bytes per control character) plus the other members. */
#define CONTENT_MAX_ENCODED (6 * CONTENT_MAX_BODY + 2 * CONTENT_MAX_DESCRIPTOR + 4096)

/* The kinds; the values are those of tsr_message.kind (TSR_KIND_*). */
typedef enum {
  CONTENT_TEXT = 0,
  CONTENT_EDIT = 1,
  CONTENT_DELETE = 2,
  CONTENT_REACTION = 3,
  CONTENT_RECEIPT = 4,
  CONTENT_TYPING = 5,
  CONTENT_ATTACHMENT = 6,
  CONTENT_TITLE = 7,
  CONTENT_UNSUPPORTED = 8,
} content_kind;

enum { CONTENT_DELIVERED = 1, CONTENT_READ = 2 };

/* One decoded or to-be-encoded message. Which members count depends on
 * kind:
 *   text        body (1..CONTENT_MAX_BODY), reply_to (0: none)
 *   edit        target, body (1..CONTENT_MAX_BODY)
 *   delete      target
 *   reaction    target, emoji (1..CONTENT_MAX_EMOJI), remove
 *   receipt     receipt (CONTENT_DELIVERED / CONTENT_READ), target = up_to
 *   typing      on
 *   attachment  descriptor (1..CONTENT_MAX_DESCRIPTOR), body = caption
 *               (0..CONTENT_MAX_BODY), reply_to
 *   title       body = the title (0..CONTENT_MAX_TITLE; empty: none)
 * Strings are UTF-8 without NUL bytes. Seqs (target, reply_to) are 1 ..
 * INT64_MAX when present. Others are zero. */
typedef struct {
  content_kind kind;
  const char *body;
  size_t body_len;
  uint64_t reply_to;
  uint64_t target;
  const char *emoji;
  size_t emoji_len;
  bool remove;
  int receipt;
  bool on;
  const char *descriptor;
  size_t descriptor_len;
  char *mem_; /* decode: owns the strings above */
  size_t mem_len_;
} content;

/* Decodes an envelope into *out (zeroed first). 0, or TSR_EDECODE (not
 * an envelope of this version: bad JSON, trailing bytes, invalid UTF-8,
 * an unknown version, a known kind with a missing or invalid member),
 * TSR_ELIMIT (longer than CONTENT_MAX_ENCODED), TSR_ENOMEM. On failure
 * *out holds nothing to free. */
int content_decode(bytes_t in, content *out);

/* Wipes and frees what content_decode allocated; the struct is zeroed. */
void content_clear(content *c);

/* Checks c against the rules above (CONTENT_UNSUPPORTED is refused: it
 * cannot be sent). 0 or TSR_EINVAL. */
int content_check(const content *c);

/* Appends the envelope of c to out. 0, TSR_EINVAL (content_check), or
 * TSR_ENOMEM. */
int content_encode(const content *c, buf_t *out);

/* The name of a kind ("text", ...; "unsupported"), static storage. */
const char *content_kind_name(content_kind k);

#endif
