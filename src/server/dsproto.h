/* The frames between workers and the delivery service (ds.h) over ipc.h.
 * Field lists use the codec of mls/codec.h: id16 = 16 raw bytes (wr_raw),
 * opaque = wr_opaque, vectors = wr_vec_begin/end. Both sides are built
 * from this one header and run the same binary, so there is no version
 * negotiation; a field the reader does not expect is a broken peer.
 *
 * Worker -> DS (requests carry an id; ONLINE/OFFLINE/HELLO carry 0):
 *   HELLO    u32 worker index
 *   ONLINE   id16 device, id16 account   (first session of the device on this worker)
 *   OFFLINE  id16 device                 (its last session here closed)
 *   CREATE   id16 account, id16 device, u8 app, u8 kind, u8 request (direct
 *            conversation outside the recipient's rules), opaque group_info,
 *            opaque commit, opaque welcome, vector of { id16 account,
 *            vector of { id16 device, key32 signature key } } — the members
 *            the worker authorised
 *            (reachable, not blocked) with their live devices; the creator's
 *            own account comes first
 *   SEND     id16 account, id16 device, id16 conversation, opaque client_id,
 *            opaque message
 *   SYNC     id16 device, id16 conversation, u64 after, u32 limit
 *   ACK      id16 device, id16 conversation, u64 seq
 *   LIST     id16 device
 *   MEMBERS  id16 account, id16 device, id16 conversation, opaque client_id,
 *            opaque commit, opaque welcome, vector of { id16 account, u8 reach
 *            (bit 1 << app: reachable from that app), vector of { id16 device,
 *            key32 signature key } }
 *            — accounts the worker authorised to add with their live devices
 *            (the caller's own account included, for its own devices) —,
 *            vector of id16 account — accounts to remove
 *   STATE    id16 account, id16 device, id16 conversation, u8 action
 *            (DSP_ACCEPT / DSP_DECLINE a message request)
 *   LEAVE    id16 account, id16 device, id16 conversation, opaque client_id,
 *            opaque proposal (a Remove of the device's own leaf)
 *   ROLE     id16 account, id16 device, id16 conversation, id16 target
 *            account, u8 role (DSP_ROLE_MEMBER / _ADMIN)
 *   INFO     id16 device, id16 conversation
 *   DEVICES  id16 account, vector of id16 revoked devices, vector of id16
 *            live devices (no answer: id 0) — the account's devices changed
 *   TRANSIENT id16 account, id16 device, id16 conversation, opaque message
 *            (an application PrivateMessage pushed to the others online,
 *            never stored, no seq)
 *   NOTIFY   vector of id16 devices, opaque body (no answer: id 0) — a
 *            public-life notification (notify.h), the whole push text,
 *            for those of the devices that are online
 *
 * DS -> worker:
 *   RESULT   (the request's id) i32 status (0 or a TSR_E* code), opaque
 *            error code, opaque message, then on success the op's fields:
 *              CREATE: u64 next seq
 *              SEND, MEMBERS, LEAVE: u64 seq, u8 duplicate
 *              SYNC:   vector of { u64 seq, u64 at_ms, opaque message }, u8 more
 *              ACK:    u64 cursor
 *              STATE:  u8 the conversation's new state
 *              LIST:   vector of { id16 conversation, u8 app, u8 kind, u8 state,
 *                      u64 joined_seq, u64 last_seq, u64 cursor, opaque welcome,
 *                      u8 role, vector of id16 devices waiting for removal }
 *              ROLE:   u8 role
 *              TRANSIENT: nothing (pushed, not stored)
 *              INFO:   u8 app, u8 kind, u8 state, vector of { id16 account,
 *                      u8 role }, u32 devices
 *   PUSH     (id 0) u8 kind (DSP_PUSH_*), id16 conversation (zero for DEVICES),
 *            u64 seq, u64 at_ms, opaque body, vector of id16 device — the
 *            online devices on this worker it is for */
#ifndef TSR_SERVER_DSPROTO_H
#define TSR_SERVER_DSPROTO_H

enum {
  DSP_HELLO = 1,
  DSP_ONLINE = 2,
  DSP_OFFLINE = 3,
  DSP_CREATE = 4,
  DSP_SEND = 5,
  DSP_SYNC = 6,
  DSP_ACK = 7,
  DSP_LIST = 8,
  DSP_MEMBERS = 9,
  DSP_STATE = 10,
  DSP_LEAVE = 11,
  DSP_ROLE = 12,
  DSP_INFO = 13,
  DSP_DEVICES = 14,
  DSP_TRANSIENT = 15,
  DSP_NOTIFY = 16,
  DSP_RESULT = 64,
  DSP_PUSH = 65,
};

enum {
  DSP_PUSH_MESSAGE = 1,
  DSP_PUSH_WELCOME = 2,
  DSP_PUSH_ROSTER = 3,    /* devices wait for removal: list the conversations */
  DSP_PUSH_DEVICES = 4,   /* the account's device set changed (no conversation) */
  DSP_PUSH_TRANSIENT = 5, /* a transient message: seq and at_ms are 0 */
  DSP_PUSH_NOTIFY = 6,    /* body: a notification's push text, sent as is */
};

/* A member's role. A member who left keeps the row until a commit removed
 * all their devices. */
enum { DSP_ROLE_MEMBER = 0, DSP_ROLE_ADMIN = 1, DSP_ROLE_LEFT = 2 };

enum { DSP_KIND_DIRECT = 1, DSP_KIND_GROUP = 2 };

/* Conversation state: active, or a direct conversation waiting for the
 * recipient to accept it (a message request). */
enum { DSP_STATE_ACTIVE = 0, DSP_STATE_REQUEST = 1, DSP_STATE_DECLINED = 2 };

/* STATE actions of a request's recipient. */
enum { DSP_ACCEPT = 1, DSP_DECLINE = 2 };

#define DSP_ID 16
#define DSP_KEY 32           /* a device's Ed25519 signature key */
#define DSP_SYNC_MAX 500     /* messages per SYNC answer */
#define DSP_CLIENT_ID_MAX 64 /* bytes of a client message id */
#define DSP_SOCKET "ds.sock" /* in the data directory */
#define DSP_DIR "ds"         /* the delivery service's store, under the data directory */

#endif
