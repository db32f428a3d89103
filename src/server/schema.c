/* The server's schema: the ordered migration list given to store_open.
 *
 * Append only: a released migration is never edited or reordered (the
 * store refuses a database whose recorded names differ). Plain SQL that
 * PostgreSQL also runs, with explicit primary keys; BLOB columns become
 * BYTEA in a PostgreSQL backend. Times are Unix seconds. */
#include "server/worker.h"

static const char accounts_v1[] =
    /* id: 16 random bytes; login lower-cased; password_hash: libsodium's
     * argon2id string ($argon2id$v=19$m=...,t=...,p=1$salt$hash). */
    "CREATE TABLE accounts ("
    " id BLOB PRIMARY KEY,"
    " login TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL,"
    " phone TEXT,"
    " phone_verified INTEGER NOT NULL DEFAULT 0,"
    " email TEXT,"
    " identity_key BLOB NOT NULL,"
    " created_at INTEGER NOT NULL);"
    /* A number belongs to at most one account once verified. */
    "CREATE UNIQUE INDEX accounts_verified_phone ON accounts(phone)"
    " WHERE phone_verified = 1;"
    /* token_hash: SHA-256 of the device's bearer token. */
    "CREATE TABLE devices ("
    " id BLOB PRIMARY KEY,"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " name TEXT NOT NULL,"
    " signature_key BLOB NOT NULL,"
    " certificate BLOB NOT NULL,"
    " token_hash BLOB NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX devices_by_account ON devices(account_id);"
    /* code_hash: SHA-256 of the 8-digit code; single use, short-lived. */
    "CREATE TABLE link_codes ("
    " code_hash BLOB PRIMARY KEY,"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_by BLOB NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0);"
    /* The last code sent for (account, phone); replaced by a new one. */
    "CREATE TABLE phone_codes ("
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " phone TEXT NOT NULL,"
    " code_hash BLOB NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " PRIMARY KEY (account_id, phone));";

/* Profiles, the three apps' graphs, and blocks. Ids are accounts.id.
 * profiles.handle: the lower-cased social handle or messenger username,
 * NULL for chat (whose key is the account's verified phone, read from
 * accounts, so a changed number never goes stale); NULLs are distinct in a
 * unique index in SQLite and PostgreSQL alike. Every graph has its own
 * tables: the apps' graphs are never merged. */
static const char social_v1[] =
    "CREATE TABLE profiles ("
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " handle TEXT,"
    " name TEXT NOT NULL,"
    " bio TEXT NOT NULL,"
    " private INTEGER NOT NULL DEFAULT 0,"
    " page INTEGER NOT NULL DEFAULT 0,"
    " category TEXT NOT NULL DEFAULT '',"
    " hours TEXT NOT NULL DEFAULT '',"
    " website TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (account_id, app));"
    "CREATE UNIQUE INDEX profiles_by_handle ON profiles(app, handle);"
    /* chat: the owner's address book (numbers, registered or not). */
    "CREATE TABLE chat_contacts ("
    " owner_id BLOB NOT NULL REFERENCES accounts(id),"
    " number TEXT NOT NULL,"
    " PRIMARY KEY (owner_id, number));"
    "CREATE INDEX chat_contacts_by_number ON chat_contacts(number);"
    "CREATE TABLE social_follows ("
    " follower_id BLOB NOT NULL REFERENCES accounts(id),"
    " followee_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (follower_id, followee_id));"
    "CREATE INDEX social_follows_by_followee ON social_follows(followee_id, follower_id);"
    "CREATE TABLE social_follow_requests ("
    " requester_id BLOB NOT NULL REFERENCES accounts(id),"
    " target_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (requester_id, target_id));"
    "CREATE INDEX social_follow_requests_by_target"
    " ON social_follow_requests(target_id, requester_id);"
    "CREATE TABLE messenger_friend_requests ("
    " requester_id BLOB NOT NULL REFERENCES accounts(id),"
    " target_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (requester_id, target_id));"
    "CREATE INDEX messenger_friend_requests_by_target"
    " ON messenger_friend_requests(target_id, requester_id);"
    /* One row per direction, so listing is a prefix scan of the key. */
    "CREATE TABLE messenger_friends ("
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " friend_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (account_id, friend_id));"
    "CREATE TABLE messenger_page_follows ("
    " follower_id BLOB NOT NULL REFERENCES accounts(id),"
    " page_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (follower_id, page_id));"
    "CREATE INDEX messenger_page_follows_by_page"
    " ON messenger_page_follows(page_id, follower_id);"
    /* app, target: how the blocker named the blocked account (for the list
     * and for unblocking by that name). */
    "CREATE TABLE blocks ("
    " blocker_id BLOB NOT NULL REFERENCES accounts(id),"
    " blocked_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (blocker_id, blocked_id));"
    "CREATE INDEX blocks_by_blocked ON blocks(blocked_id, blocker_id);";

/* Reachability (server/reach.h). reach_rules: a profile's rule (everyone,
 * graph, nobody) for senders from from_app; no row means graph.
 * reach_requests: message requests, one per (sender, recipient, from_app,
 * to_app); id is 16 random bytes; state 'pending' or 'declined' (kept so a
 * repeat within 30 days of updated_at is not notified again).
 * reach_accepted: accepted directions. reach_daily: new requests per
 * sender account and UTC day (day = Unix seconds / 86400). */
static const char reach_v1[] =
    "CREATE TABLE reach_rules ("
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " from_app TEXT NOT NULL,"
    " rule TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (account_id, app, from_app));"
    "CREATE TABLE reach_requests ("
    " id BLOB PRIMARY KEY,"
    " sender_id BLOB NOT NULL REFERENCES accounts(id),"
    " recipient_id BLOB NOT NULL REFERENCES accounts(id),"
    " from_app TEXT NOT NULL,"
    " to_app TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX reach_requests_by_pair"
    " ON reach_requests(sender_id, recipient_id, from_app, to_app);"
    "CREATE INDEX reach_requests_by_recipient ON reach_requests(recipient_id, state);"
    "CREATE TABLE reach_accepted ("
    " sender_id BLOB NOT NULL REFERENCES accounts(id),"
    " recipient_id BLOB NOT NULL REFERENCES accounts(id),"
    " from_app TEXT NOT NULL,"
    " to_app TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (sender_id, recipient_id, from_app, to_app));"
    "CREATE TABLE reach_daily ("
    " sender_id BLOB NOT NULL REFERENCES accounts(id),"
    " day INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY (sender_id, day));";

/* MLS KeyPackages (server/keypackages.h), handed out once each to devices
 * adding this device to a group. ref: the KeyPackageRef (RFC 9420 §5.2,
 * 32 bytes for suites 1 and 3); body: the MLSMessage(KeyPackage) exactly
 * as uploaded; suite: its cipher suite (1 or 3); last_resort 1: the
 * device's one KeyPackage handed out again and again when it has no other
 * of that suite (replaced by a new upload, never deleted by a claim);
 * not_after: the leaf node lifetime's end (past it the row is never handed
 * out and is deleted when next seen). Rows go with their device's
 * revocation. The index serves the claim (oldest live one of a device and
 * suite) and the per-device counts. */
static const char keypackages_v1[] =
    "CREATE TABLE key_packages ("
    " ref BLOB PRIMARY KEY,"
    " device_id BLOB NOT NULL REFERENCES devices(id),"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " suite INTEGER NOT NULL,"
    " body BLOB NOT NULL,"
    " last_resort INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL);"
    "CREATE INDEX key_packages_by_device"
    " ON key_packages(device_id, suite, last_resort, created_at);";

/* Attachments (server/blobs.h): one row per stored blob, whose bytes are
 * the file <data_dir>/blobs/<id as base64url>. id: 16 random bytes (the
 * capability to read it); account_id: the uploader; size: bytes of the
 * file; created_at: upload time, for the retention sweep (index). The row
 * is written after the file is durable, and deleted before the file. */
static const char blobs_v1[] = "CREATE TABLE blobs ("
                               " id BLOB PRIMARY KEY,"
                               " account_id BLOB NOT NULL REFERENCES accounts(id),"
                               " size INTEGER NOT NULL,"
                               " created_at INTEGER NOT NULL);"
                               "CREATE INDEX blobs_by_created ON blobs(created_at);";

/* Public media (server/media.h): content-addressed files
 * <data_dir>/media/<hash as 64 hex digits>. hash: SHA-256 of the stored
 * bytes (after an image's re-encoding); kind 'image' or 'video'; refs:
 * posts and stories using it (kept by the posts module); a row with no
 * refs is deleted a day after its upload, then its file. media_sources:
 * SHA-256 of an uploaded original -> the stored hash, so uploading the
 * same original again neither re-encodes nor stores anything. */
static const char media_v1[] =
    "CREATE TABLE media ("
    " hash BLOB PRIMARY KEY,"
    " kind TEXT NOT NULL,"
    " mime TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " width INTEGER NOT NULL,"
    " height INTEGER NOT NULL,"
    " refs INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX media_unreferenced ON media(refs, created_at);"
    "CREATE TABLE media_sources ("
    " source_hash BLOB PRIMARY KEY,"
    " hash BLOB NOT NULL REFERENCES media(hash));"
    "CREATE INDEX media_sources_by_hash ON media_sources(hash);";

/* Public life (server/posts.h and friends). Ids of posts, comments,
 * stories, notifications and reports are 64-bit numbers increasing with
 * time, made by the store writer (ms << 22 | n); times here are
 * milliseconds. posts.apps: bit 1 << app of each audience (social,
 * messenger); visibility 'public', 'followers' or 'close_friends'; the
 * counters are the post's one set. timelines: fan-out on write, one row
 * per (reader, app, post); authors in fanout_read are read at feed time
 * instead. post_tags.open: the post is public and its author not private
 * when tagged (hashtag pages show only those, checked again at read).
 * comments.verdict 'ham', 'spam' or 'held'; appeal NULL, 'pending',
 * 'upheld' or 'rejected'; fingerprint: spam.h's, for repetition.
 * notifications.kind: like, comment, reply, mention, follow,
 * follow_request. reports: post_id or comment_id, the other 0.
 */
static const char public_v1[] =
    "CREATE TABLE posts ("
    " id INTEGER PRIMARY KEY,"
    " author_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " caption TEXT NOT NULL,"
    " location TEXT NOT NULL,"
    " visibility TEXT NOT NULL,"
    " apps INTEGER NOT NULL,"
    " likes INTEGER NOT NULL DEFAULT 0,"
    " comments INTEGER NOT NULL DEFAULT 0,"
    " views INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " edited_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX posts_by_author ON posts(author_id, id);"
    "CREATE TABLE post_media ("
    " post_id INTEGER NOT NULL REFERENCES posts(id),"
    " idx INTEGER NOT NULL,"
    " hash BLOB NOT NULL REFERENCES media(hash),"
    " alt TEXT NOT NULL,"
    " PRIMARY KEY (post_id, idx));"
    "CREATE TABLE post_tags ("
    " tag TEXT NOT NULL,"
    " post_id INTEGER NOT NULL REFERENCES posts(id),"
    " open INTEGER NOT NULL,"
    " PRIMARY KEY (tag, post_id));"
    "CREATE TABLE post_mentions ("
    " post_id INTEGER NOT NULL REFERENCES posts(id),"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " PRIMARY KEY (post_id, account_id));"
    "CREATE TABLE post_views ("
    " post_id INTEGER NOT NULL REFERENCES posts(id),"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " PRIMARY KEY (post_id, account_id));"
    "CREATE TABLE timelines ("
    " owner_id BLOB NOT NULL REFERENCES accounts(id),"
    " app INTEGER NOT NULL,"
    " post_id INTEGER NOT NULL,"
    " PRIMARY KEY (owner_id, app, post_id));"
    "CREATE TABLE fanout_read ("
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " app INTEGER NOT NULL,"
    " since INTEGER NOT NULL,"
    " PRIMARY KEY (account_id, app));"
    "CREATE TABLE likes ("
    " post_id INTEGER NOT NULL REFERENCES posts(id),"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (post_id, account_id));"
    "CREATE INDEX likes_by_time ON likes(post_id, created_at);"
    "CREATE TABLE close_friends ("
    " owner_id BLOB NOT NULL REFERENCES accounts(id),"
    " friend_id BLOB NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (owner_id, friend_id));"
    "CREATE TABLE comments ("
    " id INTEGER PRIMARY KEY,"
    " post_id INTEGER NOT NULL REFERENCES posts(id),"
    " author_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " reply_to INTEGER,"
    " text TEXT NOT NULL,"
    " verdict TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " appeal TEXT,"
    " appeal_note TEXT NOT NULL DEFAULT '',"
    " fingerprint INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX comments_by_post ON comments(post_id, id);"
    "CREATE INDEX comments_by_author ON comments(author_id, created_at);"
    "CREATE INDEX comments_by_review ON comments(verdict, appeal);"
    "CREATE TABLE stories ("
    " id INTEGER PRIMARY KEY,"
    " author_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " hash BLOB NOT NULL REFERENCES media(hash),"
    " alt TEXT NOT NULL,"
    " caption TEXT NOT NULL,"
    " visibility TEXT NOT NULL,"
    " apps INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL);"
    "CREATE INDEX stories_by_author ON stories(author_id, id);"
    "CREATE INDEX stories_by_expiry ON stories(expires_at);"
    "CREATE TABLE story_views ("
    " story_id INTEGER NOT NULL REFERENCES stories(id),"
    " viewer_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " at INTEGER NOT NULL,"
    " PRIMARY KEY (story_id, viewer_id));"
    "CREATE TABLE notifications ("
    " id INTEGER PRIMARY KEY,"
    " account_id BLOB NOT NULL REFERENCES accounts(id),"
    " app TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " actor_id BLOB NOT NULL REFERENCES accounts(id),"
    " post_id INTEGER,"
    " comment_id INTEGER,"
    " text TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " seen INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX notifications_by_account ON notifications(account_id, id);"
    "CREATE INDEX notifications_by_post ON notifications(post_id);"
    "CREATE TABLE reports ("
    " id INTEGER PRIMARY KEY,"
    " reporter_id BLOB NOT NULL REFERENCES accounts(id),"
    " post_id INTEGER NOT NULL,"
    " comment_id INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " note TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " action TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " closed_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX reports_by_state ON reports(state, id);"
    "CREATE UNIQUE INDEX reports_once ON reports(reporter_id, post_id, comment_id)"
    " WHERE state = 'open';";

/* Reads of public life that public-v1 left to full scans (found by
 * bench_feed on 1M posts): a post's tags by post, and a covering index for
 * an author's posts in an app (the feed's fan-out-on-read authors and the
 * profile grid read ids without touching the rows). */
static const char public_v2[] =
    "CREATE INDEX post_tags_by_post ON post_tags(post_id, tag);"
    "CREATE INDEX posts_by_author_apps ON posts(author_id, id, apps, visibility);"
    "DROP INDEX posts_by_author;";

/* Lookups public-v1 left to full scans: the stories tray's "who has me
 * as a close friend", a comment's replies, a comment's notifications. */
static const char public_v3[] =
    "CREATE INDEX close_friends_by_friend ON close_friends(friend_id, owner_id);"
    "CREATE INDEX comments_by_reply ON comments(reply_to);"
    "CREATE INDEX notifications_by_comment ON notifications(comment_id);";

/* timeline_buffer: a post's fan-out on write lands here, where the rows of
 * 10,000 readers share a few hundred pages, and is moved into timelines by
 * a background job (server/timelines.h). */
static const char public_v4[] = "CREATE TABLE timeline_buffer ("
                                " owner_id BLOB NOT NULL REFERENCES accounts(id),"
                                " app INTEGER NOT NULL,"
                                " post_id INTEGER NOT NULL,"
                                " PRIMARY KEY (owner_id, app, post_id));";

/* timeline_purge: the timeline rows a deleted post left, one per reader of
 * its audience at deletion, removed from timelines and timeline_buffer by
 * the same background job (server/timelines.h). */
static const char public_v5[] = "CREATE TABLE timeline_purge ("
                                " owner_id BLOB NOT NULL,"
                                " app INTEGER NOT NULL,"
                                " post_id INTEGER NOT NULL,"
                                " PRIMARY KEY (owner_id, app, post_id));";

const store_migration server_schema[] = {
    {"accounts-v1", accounts_v1}, {"social-v1", social_v1},
    {"reach-v1", reach_v1},       {"keypackages-v1", keypackages_v1},
    {"blobs-v1", blobs_v1},       {"media-v1", media_v1},
    {"public-v1", public_v1},     {"public-v2", public_v2},
    {"public-v3", public_v3},     {"public-v4", public_v4},
    {"public-v5", public_v5},
};
const size_t server_schema_len = sizeof server_schema / sizeof server_schema[0];
