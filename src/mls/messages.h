/* RFC 9420 wire structures: C types, encoders and decoders.
 *
 * Decoded structures are views: every bytes_t points into the input that
 * was decoded, and every array (vectors of structs or integers) is
 * allocated from the arena passed to the decoder. A decoded structure is
 * therefore valid exactly as long as both its input bytes and its arena.
 * To keep one beyond that, copy it with the matching msg_copy_* (deep copy
 * into another arena) or keep its encoding.
 *
 * Decoders are strict: minimal length headers, every enum value known
 * where the RFC gives no extension point, optional<> bytes 0 or 1, vectors
 * consumed exactly. They return 0 or TSR_EDECODE (TSR_ENOMEM if the arena
 * fails). msg_decode_* of a top-level object also requires that the whole
 * input is consumed. Encoders append to a buf_t; check buf_t.err once at
 * the end. Encoding a decoded structure reproduces its input exactly.
 *
 * Field names follow the RFC. Semantic validation (signatures, lifetimes,
 * capabilities) is not done here; see tree.h and group.h. */
#ifndef TSR_MLS_MESSAGES_H
#define TSR_MLS_MESSAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/bytes.h"
#include "mls/codec.h"

#define MLS_VERSION_10 1

enum mls_wire_format {
  MLS_WIRE_PUBLIC_MESSAGE = 1,
  MLS_WIRE_PRIVATE_MESSAGE = 2,
  MLS_WIRE_WELCOME = 3,
  MLS_WIRE_GROUP_INFO = 4,
  MLS_WIRE_KEY_PACKAGE = 5,
};

enum mls_content_type {
  MLS_CONTENT_APPLICATION = 1,
  MLS_CONTENT_PROPOSAL = 2,
  MLS_CONTENT_COMMIT = 3,
};

enum mls_sender_type {
  MLS_SENDER_MEMBER = 1,
  MLS_SENDER_EXTERNAL = 2,
  MLS_SENDER_NEW_MEMBER_PROPOSAL = 3,
  MLS_SENDER_NEW_MEMBER_COMMIT = 4,
};

enum mls_credential_type {
  MLS_CREDENTIAL_BASIC = 1,
  MLS_CREDENTIAL_X509 = 2,
};

enum mls_extension_type {
  MLS_EXT_APPLICATION_ID = 1,
  MLS_EXT_RATCHET_TREE = 2,
  MLS_EXT_REQUIRED_CAPABILITIES = 3,
  MLS_EXT_EXTERNAL_PUB = 4,
  MLS_EXT_EXTERNAL_SENDERS = 5,
};

enum mls_proposal_type {
  MLS_PROPOSAL_ADD = 1,
  MLS_PROPOSAL_UPDATE = 2,
  MLS_PROPOSAL_REMOVE = 3,
  MLS_PROPOSAL_PSK = 4,
  MLS_PROPOSAL_REINIT = 5,
  MLS_PROPOSAL_EXTERNAL_INIT = 6,
  MLS_PROPOSAL_GROUP_CONTEXT_EXTENSIONS = 7,
};

enum mls_leaf_node_source {
  MLS_LEAF_SOURCE_KEY_PACKAGE = 1,
  MLS_LEAF_SOURCE_UPDATE = 2,
  MLS_LEAF_SOURCE_COMMIT = 3,
};

enum mls_psk_type {
  MLS_PSK_EXTERNAL = 1,
  MLS_PSK_RESUMPTION = 2,
};

enum mls_resumption_usage {
  MLS_RESUMPTION_APPLICATION = 1,
  MLS_RESUMPTION_REINIT = 2,
  MLS_RESUMPTION_BRANCH = 3,
};

enum mls_node_type {
  MLS_NODE_LEAF = 1,
  MLS_NODE_PARENT = 2,
};

enum mls_proposal_or_ref_type {
  MLS_POR_PROPOSAL = 1,
  MLS_POR_REFERENCE = 2,
};

/* A Credential is basic or x509: other types (GREASE included) have no
 * body the decoder can delimit and are TSR_EDECODE. GREASE values may
 * still appear in capability lists (§13.5). */
typedef struct {
  uint16_t credential_type;
  bytes_t identity;      /* basic */
  bytes_t *certificates; /* x509: cert_data of each certificate */
  size_t n_certificates;
} mls_credential;

typedef struct {
  uint16_t extension_type;
  bytes_t extension_data;
} mls_extension;

typedef struct {
  mls_extension *items;
  size_t n;
} mls_extensions;

typedef struct {
  uint16_t *versions;
  size_t n_versions;
  uint16_t *cipher_suites;
  size_t n_cipher_suites;
  uint16_t *extensions;
  size_t n_extensions;
  uint16_t *proposals;
  size_t n_proposals;
  uint16_t *credentials;
  size_t n_credentials;
} mls_capabilities;

typedef struct {
  uint64_t not_before;
  uint64_t not_after;
} mls_lifetime;

typedef struct {
  bytes_t encryption_key;
  bytes_t signature_key;
  mls_credential credential;
  mls_capabilities capabilities;
  uint8_t leaf_node_source;
  mls_lifetime lifetime; /* key_package source only */
  bytes_t parent_hash;   /* commit source only */
  mls_extensions extensions;
  bytes_t signature;
} mls_leaf_node;

typedef struct {
  uint16_t version;
  uint16_t cipher_suite;
  bytes_t init_key;
  mls_leaf_node leaf_node;
  mls_extensions extensions;
  bytes_t signature;
} mls_key_package;

typedef struct {
  bytes_t encryption_key;
  bytes_t parent_hash;
  uint32_t *unmerged_leaves;
  size_t n_unmerged_leaves;
} mls_parent_node;

/* One entry of a ratchet tree: blank, leaf or parent. */
typedef struct {
  uint8_t node_type; /* 0 = blank, else enum mls_node_type */
  mls_leaf_node leaf;
  mls_parent_node parent;
} mls_node;

/* The ratchet_tree extension body: optional<Node> ratchet_tree<V>. */
typedef struct {
  mls_node *nodes;
  size_t n_nodes;
} mls_ratchet_tree;

typedef struct {
  bytes_t kem_output;
  bytes_t ciphertext;
} mls_hpke_ciphertext;

typedef struct {
  bytes_t encryption_key;
  mls_hpke_ciphertext *encrypted_path_secret;
  size_t n_encrypted_path_secret;
} mls_update_path_node;

typedef struct {
  mls_leaf_node leaf_node;
  mls_update_path_node *nodes;
  size_t n_nodes;
} mls_update_path;

typedef struct {
  uint8_t psktype;
  bytes_t psk_id;       /* external */
  uint8_t usage;        /* resumption */
  bytes_t psk_group_id; /* resumption */
  uint64_t psk_epoch;   /* resumption */
  bytes_t psk_nonce;
} mls_psk_id;

typedef struct {
  uint16_t proposal_type;
  /* Exactly one member is meaningful, chosen by proposal_type. */
  mls_key_package add;  /* add */
  mls_leaf_node update; /* update */
  uint32_t remove;      /* remove: leaf index */
  mls_psk_id psk;       /* psk */
  struct {              /* reinit */
    bytes_t group_id;
    uint16_t version;
    uint16_t cipher_suite;
    mls_extensions extensions;
  } reinit;
  bytes_t external_init; /* external_init: kem_output */
  mls_extensions gce;    /* group_context_extensions */
} mls_proposal;

typedef struct {
  uint8_t type; /* enum mls_proposal_or_ref_type */
  mls_proposal proposal;
  bytes_t reference;
} mls_proposal_or_ref;

typedef struct {
  mls_proposal_or_ref *proposals;
  size_t n_proposals;
  bool has_path;
  mls_update_path path;
} mls_commit;

typedef struct {
  uint8_t sender_type;
  uint32_t index; /* leaf_index (member) or sender_index (external) */
} mls_sender;

typedef struct {
  bytes_t group_id;
  uint64_t epoch;
  mls_sender sender;
  bytes_t authenticated_data;
  uint8_t content_type;
  bytes_t application_data; /* application */
  mls_proposal proposal;    /* proposal */
  mls_commit commit;        /* commit */
} mls_framed_content;

typedef struct {
  bytes_t signature;
  bytes_t confirmation_tag; /* commit only */
} mls_auth_data;

typedef struct {
  uint16_t wire_format;
  mls_framed_content content;
  mls_auth_data auth;
} mls_authenticated_content;

typedef struct {
  mls_framed_content content;
  mls_auth_data auth;
  bytes_t membership_tag; /* member sender only */
} mls_public_message;

typedef struct {
  bytes_t group_id;
  uint64_t epoch;
  uint8_t content_type;
  bytes_t authenticated_data;
  bytes_t encrypted_sender_data;
  bytes_t ciphertext;
} mls_private_message;

typedef struct {
  uint16_t version;
  uint16_t cipher_suite;
  bytes_t group_id;
  uint64_t epoch;
  bytes_t tree_hash;
  bytes_t confirmed_transcript_hash;
  mls_extensions extensions;
} mls_group_context;

typedef struct {
  mls_group_context group_context;
  mls_extensions extensions;
  bytes_t confirmation_tag;
  uint32_t signer;
  bytes_t signature;
} mls_group_info;

typedef struct {
  bytes_t joiner_secret;
  bool has_path_secret;
  bytes_t path_secret;
  mls_psk_id *psks;
  size_t n_psks;
} mls_group_secrets;

typedef struct {
  bytes_t new_member; /* KeyPackageRef */
  mls_hpke_ciphertext encrypted_group_secrets;
} mls_encrypted_group_secrets;

typedef struct {
  uint16_t cipher_suite;
  mls_encrypted_group_secrets *secrets;
  size_t n_secrets;
  bytes_t encrypted_group_info;
} mls_welcome;

typedef struct {
  uint16_t version;
  uint16_t wire_format;
  mls_public_message public_message;
  mls_private_message private_message;
  mls_welcome welcome;
  mls_group_info group_info;
  mls_key_package key_package;
} mls_message;

typedef struct {
  uint16_t *extension_types;
  size_t n_extension_types;
  uint16_t *proposal_types;
  size_t n_proposal_types;
  uint16_t *credential_types;
  size_t n_credential_types;
} mls_required_capabilities;

typedef struct {
  bytes_t signature_key;
  mls_credential credential;
} mls_external_sender;

typedef struct {
  mls_external_sender *items;
  size_t n;
} mls_external_senders;

/* --- Encoders (append to w) ------------------------------------------ */
void msg_encode_credential(buf_t *w, const mls_credential *v);
void msg_encode_extensions(buf_t *w, const mls_extensions *v);
void msg_encode_capabilities(buf_t *w, const mls_capabilities *v);
void msg_encode_leaf_node(buf_t *w, const mls_leaf_node *v);
/* LeafNodeTBS: group_id/leaf_index are used for update and commit sources. */
void msg_encode_leaf_node_tbs(buf_t *w, const mls_leaf_node *v, bytes_t group_id,
                              uint32_t leaf_index);
void msg_encode_key_package(buf_t *w, const mls_key_package *v);
void msg_encode_key_package_tbs(buf_t *w, const mls_key_package *v);
void msg_encode_parent_node(buf_t *w, const mls_parent_node *v);
void msg_encode_node(buf_t *w, const mls_node *v); /* leaf or parent, not blank */
void msg_encode_ratchet_tree(buf_t *w, const mls_ratchet_tree *v);
void msg_encode_hpke_ciphertext(buf_t *w, const mls_hpke_ciphertext *v);
void msg_encode_update_path(buf_t *w, const mls_update_path *v);
void msg_encode_psk_id(buf_t *w, const mls_psk_id *v);
void msg_encode_proposal(buf_t *w, const mls_proposal *v);
/* The proposal body without its proposal_type (Add, Update, ... structs). */
void msg_encode_proposal_body(buf_t *w, const mls_proposal *v);
void msg_encode_commit(buf_t *w, const mls_commit *v);
void msg_encode_sender(buf_t *w, const mls_sender *v);
void msg_encode_framed_content(buf_t *w, const mls_framed_content *v);
/* FramedContentAuthData: the confirmation tag is written for commits. */
void msg_encode_auth_data(buf_t *w, const mls_auth_data *v, uint8_t content_type);
/* FramedContentTBS; group_context is the encoded GroupContext, used for
 * member and new_member_commit senders and ignored for the others. */
void msg_encode_framed_content_tbs(buf_t *w, uint16_t wire_format,
                                   const mls_framed_content *v, bytes_t group_context);
void msg_encode_authenticated_content(buf_t *w, const mls_authenticated_content *v);
void msg_encode_public_message(buf_t *w, const mls_public_message *v);
void msg_encode_private_message(buf_t *w, const mls_private_message *v);
void msg_encode_group_context(buf_t *w, const mls_group_context *v);
void msg_encode_group_info(buf_t *w, const mls_group_info *v);
void msg_encode_group_info_tbs(buf_t *w, const mls_group_info *v);
/* GroupInfoTBS with the body of extension number `slot` (its
 * extension_data, without the length header) written by fill(w, ctx)
 * instead of taken from v, so a large ratchet tree can be encoded straight
 * into it. slot >= v->extensions.n: plain msg_encode_group_info_tbs. */
void msg_encode_group_info_tbs_with(buf_t *w, const mls_group_info *v, size_t slot,
                                    void (*fill)(buf_t *w, const void *ctx),
                                    const void *ctx);
void msg_encode_group_secrets(buf_t *w, const mls_group_secrets *v);
void msg_encode_welcome(buf_t *w, const mls_welcome *v);
void msg_encode_message(buf_t *w, const mls_message *v);
void msg_encode_required_capabilities(buf_t *w, const mls_required_capabilities *v);
void msg_encode_external_senders(buf_t *w, const mls_external_senders *v);

/* --- Decoders: structure parts (read from r, arrays from a) ---------- */
int msg_read_credential(reader_t *r, arena_t *a, mls_credential *v);
int msg_read_extensions(reader_t *r, arena_t *a, mls_extensions *v);
int msg_read_capabilities(reader_t *r, arena_t *a, mls_capabilities *v);
int msg_read_leaf_node(reader_t *r, arena_t *a, mls_leaf_node *v);
int msg_read_key_package(reader_t *r, arena_t *a, mls_key_package *v);
int msg_read_parent_node(reader_t *r, arena_t *a, mls_parent_node *v);
int msg_read_update_path(reader_t *r, arena_t *a, mls_update_path *v);
int msg_read_psk_id(reader_t *r, arena_t *a, mls_psk_id *v);
int msg_read_proposal(reader_t *r, arena_t *a, mls_proposal *v);
/* Body of a proposal whose type is already known (sets proposal_type). */
int msg_read_proposal_body(reader_t *r, arena_t *a, uint16_t type, mls_proposal *v);
int msg_read_commit(reader_t *r, arena_t *a, mls_commit *v);
int msg_read_framed_content(reader_t *r, arena_t *a, mls_framed_content *v);
int msg_read_auth_data(reader_t *r, uint8_t content_type, mls_auth_data *v);
int msg_read_group_context(reader_t *r, arena_t *a, mls_group_context *v);

/* --- Decoders: whole objects (input must be consumed exactly) -------- */
int msg_decode_leaf_node(bytes_t in, arena_t *a, mls_leaf_node *v);
int msg_decode_key_package(bytes_t in, arena_t *a, mls_key_package *v);
int msg_decode_ratchet_tree(bytes_t in, arena_t *a, mls_ratchet_tree *v);
int msg_decode_update_path(bytes_t in, arena_t *a, mls_update_path *v);
int msg_decode_proposal(bytes_t in, arena_t *a, mls_proposal *v);
int msg_decode_commit(bytes_t in, arena_t *a, mls_commit *v);
int msg_decode_authenticated_content(bytes_t in, arena_t *a,
                                     mls_authenticated_content *v);
int msg_decode_public_message(bytes_t in, arena_t *a, mls_public_message *v);
int msg_decode_private_message(bytes_t in, arena_t *a, mls_private_message *v);
int msg_decode_group_context(bytes_t in, arena_t *a, mls_group_context *v);
int msg_decode_group_info(bytes_t in, arena_t *a, mls_group_info *v);
int msg_decode_group_secrets(bytes_t in, arena_t *a, mls_group_secrets *v);
int msg_decode_welcome(bytes_t in, arena_t *a, mls_welcome *v);
/* A version other than mls10 gives TSR_EUNSUPPORTED. */
int msg_decode_message(bytes_t in, arena_t *a, mls_message *v);
int msg_decode_required_capabilities(bytes_t in, arena_t *a,
                                     mls_required_capabilities *v);
int msg_decode_external_senders(bytes_t in, arena_t *a, mls_external_senders *v);

/* --- Deep copies into arena `a` (views re-pointed into a) ------------ */
/* TSR_EINVAL if `in` is not a well-formed structure (cannot round-trip). */
int msg_copy_leaf_node(arena_t *a, const mls_leaf_node *in, mls_leaf_node *out);
int msg_copy_parent_node(arena_t *a, const mls_parent_node *in, mls_parent_node *out);
int msg_copy_key_package(arena_t *a, const mls_key_package *in, mls_key_package *out);
int msg_copy_extensions(arena_t *a, const mls_extensions *in, mls_extensions *out);
int msg_copy_psk_id(arena_t *a, const mls_psk_id *in, mls_psk_id *out);
int msg_copy_proposal(arena_t *a, const mls_proposal *in, mls_proposal *out);

/* --- Small helpers ---------------------------------------------------- */
/* First extension of the given type, or NULL. */
const mls_extension *msg_find_extension(const mls_extensions *v, uint16_t type);
/* True if the list contains value. */
bool msg_u16_contains(const uint16_t *list, size_t n, uint16_t value);

#endif
