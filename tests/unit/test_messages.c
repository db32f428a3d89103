/* Messages: RFC 9420 wire structures against messages.json, plus strict
 * decoding (truncation, trailing bytes, bad headers, unknown enums). */
#include <stdlib.h>

#include "mls/messages.h"
#include "test.h"
#include "vectors.h"

/* What a vector field holds and how to decode it. */
enum kind { K_MESSAGE, K_TREE, K_SECRETS, K_COMMIT, K_PROPOSAL };

typedef struct {
  const char *field;
  enum kind kind;
  uint16_t type;   /* wire_format (K_MESSAGE) or proposal_type (K_PROPOSAL) */
  uint8_t content; /* content_type of a public message, else 0 */
} field_spec;

static const field_spec FIELDS[] = {
    {"mls_welcome", K_MESSAGE, MLS_WIRE_WELCOME, 0},
    {"mls_group_info", K_MESSAGE, MLS_WIRE_GROUP_INFO, 0},
    {"mls_key_package", K_MESSAGE, MLS_WIRE_KEY_PACKAGE, 0},
    {"ratchet_tree", K_TREE, 0, 0},
    {"group_secrets", K_SECRETS, 0, 0},
    {"add_proposal", K_PROPOSAL, MLS_PROPOSAL_ADD, 0},
    {"update_proposal", K_PROPOSAL, MLS_PROPOSAL_UPDATE, 0},
    {"remove_proposal", K_PROPOSAL, MLS_PROPOSAL_REMOVE, 0},
    {"pre_shared_key_proposal", K_PROPOSAL, MLS_PROPOSAL_PSK, 0},
    {"re_init_proposal", K_PROPOSAL, MLS_PROPOSAL_REINIT, 0},
    {"external_init_proposal", K_PROPOSAL, MLS_PROPOSAL_EXTERNAL_INIT, 0},
    {"group_context_extensions_proposal", K_PROPOSAL,
     MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS, 0},
    {"commit", K_COMMIT, 0, 0},
    {"public_message_application", K_MESSAGE, MLS_WIRE_PUBLIC_MESSAGE,
     MLS_CONTENT_APPLICATION},
    {"public_message_proposal", K_MESSAGE, MLS_WIRE_PUBLIC_MESSAGE, MLS_CONTENT_PROPOSAL},
    {"public_message_commit", K_MESSAGE, MLS_WIRE_PUBLIC_MESSAGE, MLS_CONTENT_COMMIT},
    {"private_message", K_MESSAGE, MLS_WIRE_PRIVATE_MESSAGE, 0},
};
#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

static bytes_t skip(bytes_t b, size_t n) { return BYTES(b.ptr + n, b.len - n); }

/* Proposal bodies carry no type: read them with the body reader and
 * require the reader to be consumed exactly. */
static int decode_proposal_body(bytes_t in, arena_t *a, uint16_t type, mls_proposal *p) {
  reader_t r;
  rd_init(&r, in);
  int rc = msg_read_proposal_body(&r, a, type, p);
  return rc ? rc : rd_done(&r);
}

/* Decodes `in` as spec says and re-encodes it into out. */
static int decode_encode(const field_spec *spec, bytes_t in, arena_t *a, buf_t *out) {
  int rc;
  buf_reset(out);
  switch (spec->kind) {
  case K_MESSAGE: {
    mls_message m;
    if ((rc = msg_decode_message(in, a, &m))) return rc;
    msg_encode_message(out, &m);
    break;
  }
  case K_TREE: {
    mls_ratchet_tree t;
    if ((rc = msg_decode_ratchet_tree(in, a, &t))) return rc;
    msg_encode_ratchet_tree(out, &t);
    break;
  }
  case K_SECRETS: {
    mls_group_secrets s;
    if ((rc = msg_decode_group_secrets(in, a, &s))) return rc;
    msg_encode_group_secrets(out, &s);
    break;
  }
  case K_COMMIT: {
    mls_commit c;
    if ((rc = msg_decode_commit(in, a, &c))) return rc;
    msg_encode_commit(out, &c);
    break;
  }
  case K_PROPOSAL: {
    mls_proposal p;
    if ((rc = decode_proposal_body(in, a, spec->type, &p))) return rc;
    msg_encode_proposal_body(out, &p);
    break;
  }
  }
  return out->err;
}

/* Inner objects of an MLSMessage through their own decoders. */
static void check_message_parts(const field_spec *spec, bytes_t in, arena_t *a) {
  mls_message m;
  buf_t w;
  buf_init(&w);
  CHECK_OK(msg_decode_message(in, a, &m));
  CHECK_INT(m.version, MLS_VERSION_10);
  CHECK_INT(m.wire_format, spec->type);
  bytes_t body = skip(in, 4);
  if (spec->type == MLS_WIRE_PUBLIC_MESSAGE) {
    mls_public_message pm;
    CHECK_INT(m.public_message.content.content_type, spec->content);
    CHECK_OK(msg_decode_public_message(body, a, &pm));
    /* AuthenticatedContent = wire_format || content || auth. */
    mls_authenticated_content ac = {MLS_WIRE_PUBLIC_MESSAGE, pm.content, pm.auth}, ac2;
    msg_encode_authenticated_content(&w, &ac);
    CHECK_OK(msg_decode_authenticated_content(buf_view(&w), a, &ac2));
  } else if (spec->type == MLS_WIRE_PRIVATE_MESSAGE) {
    mls_private_message pm;
    CHECK_OK(msg_decode_private_message(body, a, &pm));
  } else if (spec->type == MLS_WIRE_WELCOME) {
    mls_welcome wl;
    CHECK_OK(msg_decode_welcome(body, a, &wl));
    CHECK(wl.n_secrets > 0);
  } else if (spec->type == MLS_WIRE_GROUP_INFO) {
    mls_group_info gi;
    mls_group_context gc;
    CHECK_OK(msg_decode_group_info(body, a, &gi));
    msg_encode_group_context(&w, &gi.group_context);
    CHECK_OK(msg_decode_group_context(buf_view(&w), a, &gc));
    const mls_extension *rt = msg_find_extension(&gi.extensions, MLS_EXT_RATCHET_TREE);
    mls_ratchet_tree t;
    if (rt) CHECK_OK(msg_decode_ratchet_tree(rt->extension_data, a, &t));
  } else {
    mls_key_package kp;
    CHECK_OK(msg_decode_key_package(body, a, &kp));
  }
  buf_free(&w);
}

/* A proposal body with its type prepended is a Proposal. */
static void check_typed_proposal(uint16_t type, bytes_t body, arena_t *a) {
  buf_t in, out;
  buf_init(&in);
  buf_init(&out);
  wr_u16(&in, type);
  wr_raw(&in, body);
  mls_proposal p;
  CHECK_OK(msg_decode_proposal(buf_view(&in), a, &p));
  msg_encode_proposal(&out, &p);
  CHECK_BYTES(buf_view(&out), buf_view(&in));
  buf_free(&in);
  buf_free(&out);
}

/* The update path of a commit through its own decoder. */
static void check_commit_path(bytes_t in, arena_t *a) {
  mls_commit c;
  CHECK_OK(msg_decode_commit(in, a, &c));
  if (!c.has_path) return;
  buf_t w;
  buf_init(&w);
  msg_encode_update_path(&w, &c.path);
  mls_update_path up;
  CHECK_OK(msg_decode_update_path(buf_view(&w), a, &up));
  buf_free(&w);
}

static void check_field(const field_spec *spec, bytes_t in, arena_t *a, buf_t *out) {
  int rc = decode_encode(spec, in, a, out);
  if (rc) fprintf(stderr, "  %s: %s\n", spec->field, tsr_errname(rc));
  CHECK_OK(rc);
  CHECK_BYTES(buf_view(out), in);
  if (spec->kind == K_MESSAGE) check_message_parts(spec, in, a);
  if (spec->kind == K_PROPOSAL) check_typed_proposal(spec->type, in, a);
  if (spec->kind == K_COMMIT) check_commit_path(in, a);
}

static void test_vectors_messages(void) {
  const char *why = NULL;
  cJSON *j = vec_load("mls/messages.json", &why);
  if (!j) TEST_SKIP("%s", why);
  int count = 0;
  buf_t in, out;
  buf_init(&in);
  buf_init(&out);
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    arena_t a;
    arena_init(&a);
    for (size_t i = 0; i < N_FIELDS && !test_failing(); i++) {
      CHECK_OK(vec_hex(e, FIELDS[i].field, &in));
      check_field(&FIELDS[i], buf_view(&in), &a, &out);
    }
    arena_free(&a);
    if (test_failing()) {
      fprintf(stderr, "  entry %d failed\n", count);
      break;
    }
    count++;
  }
  vec_report("messages.json", 0, count);
  CHECK(count > 0);
  buf_free(&in);
  buf_free(&out);
  cJSON_Delete(j);
}

/* --- Negative tests on the first vector entry ------------------------- */

static cJSON *first_entry(cJSON **root) {
  const char *why = NULL;
  *root = vec_load("mls/messages.json", &why);
  if (!*root) return NULL;
  return cJSON_GetArrayItem(*root, 0);
}

static const field_spec *spec_of(const char *field) {
  for (size_t i = 0; i < N_FIELDS; i++)
    if (strcmp(FIELDS[i].field, field) == 0) return &FIELDS[i];
  return NULL;
}

/* Decodes from an exact-size heap copy so ASan sees any over-read. */
static int decode_exact(const field_spec *spec, bytes_t in) {
  uint8_t *copy = malloc(in.len ? in.len : 1);
  if (!copy) return TSR_ENOMEM;
  if (in.len) memcpy(copy, in.ptr, in.len);
  arena_t a;
  arena_init(&a);
  buf_t out;
  buf_init(&out);
  int rc = decode_encode(spec, BYTES(copy, in.len), &a, &out);
  buf_free(&out);
  arena_free(&a);
  free(copy);
  return rc;
}

static const char *const STRICT_FIELDS[] = {
    "mls_welcome",           "mls_group_info",          "mls_key_package",
    "ratchet_tree",          "group_secrets",           "commit",
    "public_message_commit", "public_message_proposal", "private_message",
    "re_init_proposal",
};

static void test_truncation_and_trailing(void) {
  cJSON *root;
  const cJSON *e = first_entry(&root);
  if (!e) TEST_SKIP("no vectors");
  buf_t in;
  buf_init(&in);
  for (size_t f = 0; f < sizeof STRICT_FIELDS / sizeof STRICT_FIELDS[0]; f++) {
    const field_spec *spec = spec_of(STRICT_FIELDS[f]);
    CHECK_OK(vec_hex(e, spec->field, &in));
    for (size_t n = 0; n < in.len; n++)
      CHECK_ERR(decode_exact(spec, BYTES(in.ptr, n)), TSR_EDECODE);
    wr_u8(&in, 0);
    CHECK_ERR(decode_exact(spec, buf_view(&in)), TSR_EDECODE);
    CHECK_OK(decode_exact(spec, BYTES(in.ptr, in.len - 1)));
  }
  buf_free(&in);
  cJSON_Delete(root);
}

/* Loads field of the first entry into b; returns false if unavailable. */
static bool load_first(const char *field, buf_t *b) {
  cJSON *root;
  const cJSON *e = first_entry(&root);
  bool ok = e && vec_hex(e, field, b) == 0;
  cJSON_Delete(root);
  return ok;
}

/* Copy of `in` with bytes [at, at+cut) replaced by `with`. */
static void splice(buf_t *out, bytes_t in, size_t at, size_t cut, bytes_t with) {
  buf_reset(out);
  wr_raw(out, BYTES(in.ptr, at));
  wr_raw(out, with);
  wr_raw(out, skip(in, at + cut));
}

static size_t header_size(uint8_t first) { return (size_t)1 << (first >> 6); }

/* Offset of the KeyPackage credential_type inside an MLSMessage. */
static size_t credential_offset(bytes_t msg) {
  reader_t r;
  bytes_t skipped;
  rd_init(&r, skip(msg, 8)); /* version, wire_format, version, suite */
  for (int i = 0; i < 3; i++) rd_opaque(&r, &skipped); /* init, enc, sig keys */
  return r.err ? 0 : (size_t)(rd_pos(&r) - msg.ptr);
}

static void test_bad_headers(void) {
  buf_t kp, tree, bad;
  buf_init(&kp);
  buf_init(&tree);
  buf_init(&bad);
  if (!load_first("mls_key_package", &kp) || !load_first("ratchet_tree", &tree))
    TEST_SKIP("no vectors");
  const field_spec *msg = spec_of("mls_key_package"), *rt = spec_of("ratchet_tree");
  const uint8_t huge[] = {0xbf, 0xff, 0xff, 0xff}; /* 2^30 - 1 */
  /* init_key claims 2^30 - 1 bytes. */
  splice(&bad, buf_view(&kp), 8, header_size(kp.ptr[8]), BYTES(huge, 4));
  CHECK_ERR(decode_exact(msg, buf_view(&bad)), TSR_EDECODE);
  /* The tree vector claims 2^30 - 1 bytes of nodes. */
  splice(&bad, buf_view(&tree), 0, header_size(tree.ptr[0]), BYTES(huge, 4));
  CHECK_ERR(decode_exact(rt, buf_view(&bad)), TSR_EDECODE);
  /* Same length, non-minimal 4-byte header. */
  uint8_t wide[4] = {0x80, 0, (uint8_t)(tree.ptr[0] & 0x3f), tree.ptr[1]};
  splice(&bad, buf_view(&tree), 0, 2, BYTES(wide, 4));
  CHECK_ERR(decode_exact(rt, buf_view(&bad)), TSR_EDECODE);
  /* Reserved 0b11 prefix. */
  splice(&bad, buf_view(&tree), 0, 1, BYTES("\xc0", 1));
  CHECK_ERR(decode_exact(rt, buf_view(&bad)), TSR_EDECODE);
  buf_free(&kp);
  buf_free(&tree);
  buf_free(&bad);
}

static void expect_byte_rejected(const char *field, size_t at, uint8_t value, int err) {
  buf_t b;
  buf_init(&b);
  if (!load_first(field, &b) || at >= b.len) {
    test_case_failed_ = 1;
    buf_free(&b);
    return;
  }
  b.ptr[at] = value;
  CHECK_ERR(decode_exact(spec_of(field), buf_view(&b)), err);
  buf_free(&b);
}

/* Position of the optional<> byte that follows a leading vector/opaque. */
static size_t after_first_vector(const char *field) {
  buf_t b;
  buf_init(&b);
  size_t at = 0;
  if (load_first(field, &b)) {
    reader_t r, sub;
    rd_init(&r, buf_view(&b));
    if (rd_vec(&r, &sub) == 0) at = (size_t)(rd_pos(&r) - b.ptr);
  }
  buf_free(&b);
  return at;
}

static void test_bad_optional_and_enums(void) {
  buf_t kp;
  buf_init(&kp);
  if (!load_first("mls_key_package", &kp)) TEST_SKIP("no vectors");
  /* optional<> presence bytes: first tree entry, commit path, path_secret. */
  expect_byte_rejected("ratchet_tree", header_size(0x40), 2, TSR_EDECODE);
  expect_byte_rejected("commit", after_first_vector("commit"), 2, TSR_EDECODE);
  expect_byte_rejected("group_secrets", after_first_vector("group_secrets"), 0x80,
                       TSR_EDECODE);
  /* MLSMessage version and wire_format. */
  expect_byte_rejected("mls_key_package", 1, 2, TSR_EUNSUPPORTED);
  expect_byte_rejected("mls_key_package", 3, 0, TSR_EDECODE);
  expect_byte_rejected("mls_key_package", 3, 6, TSR_EDECODE);
  /* Public message sender_type and content_type: group_id is 16 bytes. */
  expect_byte_rejected("public_message_application", 4 + 17 + 8, 5, TSR_EDECODE);
  expect_byte_rejected("private_message", 4 + 17 + 8, 4, TSR_EDECODE);
  /* A Credential must be basic or x509, GREASE included. */
  size_t cred = credential_offset(buf_view(&kp));
  CHECK(cred > 0);
  expect_byte_rejected("mls_key_package", cred + 1, 3, TSR_EDECODE);
  uint8_t grease[2] = {0x0a, 0x0a};
  buf_t bad;
  buf_init(&bad);
  splice(&bad, buf_view(&kp), cred, 2, BYTES(grease, 2));
  CHECK_ERR(decode_exact(spec_of("mls_key_package"), buf_view(&bad)), TSR_EDECODE);
  buf_free(&bad);
  buf_free(&kp);
}

static void test_unknown_proposal_type(void) {
  arena_t a;
  arena_init(&a);
  mls_proposal p;
  const uint8_t unknown[] = {0x00, 0x08, 0, 0, 0, 1};
  const uint8_t grease[] = {0x0a, 0x0a, 0, 0, 0, 1};
  const uint8_t remove[] = {0x00, 0x03, 0, 0, 0, 1};
  CHECK_ERR(msg_decode_proposal(BYTES(unknown, 6), &a, &p), TSR_EDECODE);
  CHECK_ERR(msg_decode_proposal(BYTES(grease, 6), &a, &p), TSR_EDECODE);
  CHECK_OK(msg_decode_proposal(BYTES(remove, 6), &a, &p));
  CHECK_INT(p.remove, 1);
  /* Nothing correct can be written for an unknown type. */
  buf_t w;
  buf_init(&w);
  p.proposal_type = 8;
  msg_encode_proposal(&w, &p);
  CHECK_ERR(w.err, TSR_EINVAL);
  buf_free(&w);
  arena_free(&a);
}

static void test_ratchet_tree_blank_last(void) {
  buf_t in, w;
  buf_init(&in);
  buf_init(&w);
  if (!load_first("ratchet_tree", &in)) TEST_SKIP("no vectors");
  arena_t a;
  arena_init(&a);
  mls_ratchet_tree t;
  CHECK_OK(msg_decode_ratchet_tree(buf_view(&in), &a, &t));
  mls_node *nodes = arena_alloc(&a, (t.n_nodes + 2) * sizeof *nodes);
  memcpy(nodes, t.nodes, t.n_nodes * sizeof *nodes);
  mls_ratchet_tree longer = {nodes, t.n_nodes + 2}; /* two blanks appended */
  msg_encode_ratchet_tree(&w, &longer);
  CHECK_OK(w.err);
  mls_ratchet_tree out;
  CHECK_ERR(msg_decode_ratchet_tree(buf_view(&w), &a, &out), TSR_EDECODE);
  CHECK_ERR(msg_decode_ratchet_tree(BYTES("\x00", 1), &a, &out), TSR_EDECODE);
  /* A lone blank entry. */
  CHECK_ERR(msg_decode_ratchet_tree(BYTES("\x01\x00", 2), &a, &out), TSR_EDECODE);
  arena_free(&a);
  buf_free(&in);
  buf_free(&w);
}

/* GREASE may appear in capability lists even though not as a credential. */
static void test_grease_capabilities(void) {
  buf_t in, w;
  buf_init(&in);
  buf_init(&w);
  if (!load_first("mls_key_package", &in)) TEST_SKIP("no vectors");
  arena_t a;
  arena_init(&a);
  mls_key_package kp, kp2;
  CHECK_OK(msg_decode_key_package(skip(buf_view(&in), 4), &a, &kp));
  mls_capabilities *caps = &kp.leaf_node.capabilities;
  uint16_t *creds = arena_alloc(&a, (caps->n_credentials + 1) * sizeof *creds);
  if (caps->n_credentials) memcpy(creds, caps->credentials, caps->n_credentials * 2);
  creds[caps->n_credentials] = 0x1a1a;
  caps->credentials = creds;
  caps->n_credentials++;
  msg_encode_key_package(&w, &kp);
  CHECK_OK(msg_decode_key_package(buf_view(&w), &a, &kp2));
  CHECK(msg_u16_contains(kp2.leaf_node.capabilities.credentials,
                         kp2.leaf_node.capabilities.n_credentials, 0x1a1a));
  CHECK(!msg_u16_contains(kp2.leaf_node.capabilities.credentials,
                          kp2.leaf_node.capabilities.n_credentials, 0x2a2a));
  arena_free(&a);
  buf_free(&in);
  buf_free(&w);
}

/* Odd-length uint16 vectors cannot be split into elements. */
static void test_odd_u16_vector(void) {
  arena_t a;
  arena_init(&a);
  mls_required_capabilities rc;
  const uint8_t ok[] = {0x02, 0x00, 0x05, 0x00, 0x00};
  const uint8_t odd[] = {0x03, 0x00, 0x05, 0x00, 0x00, 0x00};
  CHECK_OK(msg_decode_required_capabilities(BYTES(ok, sizeof ok), &a, &rc));
  CHECK_INT(rc.n_extension_types, 1);
  CHECK_INT(rc.extension_types[0], MLS_EXT_EXTERNAL_SENDERS);
  CHECK_ERR(msg_decode_required_capabilities(BYTES(odd, sizeof odd), &a, &rc),
            TSR_EDECODE);
  /* external_senders: one basic credential. */
  const uint8_t es[] = {0x07, 0x01, 0xaa, 0x00, 0x01, 0x02, 'i', 'd'};
  mls_external_senders s;
  CHECK_OK(msg_decode_external_senders(BYTES(es, sizeof es), &a, &s));
  CHECK_INT(s.n, 1);
  CHECK_BYTES(s.items[0].credential.identity, BYTES("id", 2));
  arena_free(&a);
}

/* A failed decode leaves the output untouched. */
static void test_failure_keeps_output(void) {
  arena_t a;
  arena_init(&a);
  mls_proposal p;
  memset(&p, 0x5a, sizeof p);
  const uint8_t trunc[] = {0x00, 0x03, 0, 0};
  CHECK_ERR(msg_decode_proposal(BYTES(trunc, 4), &a, &p), TSR_EDECODE);
  CHECK_INT(p.proposal_type, 0x5a5a);
  arena_free(&a);
}

/* Copies outlive the input and the arena they were decoded from. */
static void test_copies(void) {
  buf_t in, w, want, orig;
  buf_init(&in);
  buf_init(&w);
  buf_init(&want);
  buf_init(&orig);
  if (!load_first("add_proposal", &in)) TEST_SKIP("no vectors");
  buf_set(&orig, buf_view(&in));
  arena_t a1, a2;
  arena_init(&a1);
  arena_init(&a2);
  mls_proposal p, pc;
  mls_key_package kc;
  mls_leaf_node lc;
  mls_extensions ec;
  CHECK_OK(decode_proposal_body(buf_view(&in), &a1, MLS_PROPOSAL_ADD, &p));
  CHECK_OK(msg_copy_proposal(&a2, &p, &pc));
  CHECK_OK(msg_copy_key_package(&a2, &p.add, &kc));
  CHECK_OK(msg_copy_leaf_node(&a2, &p.add.leaf_node, &lc));
  CHECK_OK(msg_copy_extensions(&a2, &p.add.leaf_node.extensions, &ec));
  msg_encode_leaf_node(&want, &p.add.leaf_node);
  memset(in.ptr, 0, in.len);
  arena_free(&a1);
  msg_encode_proposal_body(&w, &pc);
  CHECK_BYTES(buf_view(&w), buf_view(&orig));
  buf_reset(&w);
  msg_encode_leaf_node(&w, &lc);
  CHECK_BYTES(buf_view(&w), buf_view(&want));
  buf_reset(&w);
  msg_encode_leaf_node(&w, &kc.leaf_node);
  CHECK_BYTES(buf_view(&w), buf_view(&want));
  CHECK_INT(ec.n, lc.extensions.n);
  /* psk_id and parent_node copies. */
  mls_psk_id psk = {MLS_PSK_RESUMPTION, BYTES_NONE, MLS_RESUMPTION_BRANCH,
                    BYTES("g", 1),      7,          BYTES("nonce", 5)},
             pskc;
  CHECK_OK(msg_copy_psk_id(&a2, &psk, &pskc));
  CHECK_INT(pskc.psk_epoch, 7);
  CHECK_BYTES(pskc.psk_nonce, BYTES("nonce", 5));
  CHECK(pskc.psk_nonce.ptr != psk.psk_nonce.ptr);
  uint32_t unmerged[] = {1, 5};
  mls_parent_node pn = {BYTES("key", 3), BYTES("ph", 2), unmerged, 2}, pnc;
  CHECK_OK(msg_copy_parent_node(&a2, &pn, &pnc));
  CHECK_INT(pnc.n_unmerged_leaves, 2);
  CHECK_INT(pnc.unmerged_leaves[1], 5);
  psk.psktype = 9;
  CHECK_ERR(msg_copy_psk_id(&a2, &psk, &pskc), TSR_EINVAL);
  arena_free(&a2);
  buf_free(&in);
  buf_free(&w);
  buf_free(&want);
  buf_free(&orig);
}

int main(void) {
  RUN(test_vectors_messages);
  RUN(test_truncation_and_trailing);
  RUN(test_bad_headers);
  RUN(test_bad_optional_and_enums);
  RUN(test_unknown_proposal_type);
  RUN(test_ratchet_tree_blank_last);
  RUN(test_grease_capabilities);
  RUN(test_odd_u16_vector);
  RUN(test_failure_keeps_output);
  RUN(test_copies);
  return test_report("messages");
}
