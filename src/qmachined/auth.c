/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Authorization without blocking the main loop. A method handler asks
 * qm_auth_check(). One function decides from the caller's uid: allowed,
 * denied, or polkit must be asked. When the uid is known (remembered per
 * unique bus name, which cannot change while that name exists) and
 * decides, the answer is given at once. Otherwise a query is started:
 * the uid is fetched from the bus (GetConnectionUnixUser) and/or polkit's
 * CheckAuthorization is called, both asynchronously. The verdict is
 * stored for that one message, which is put back into sd-bus's read
 * queue (sd_bus_enqueue_for_read, as systemd does); the handler runs
 * again and takes the verdict. Verdicts are never reused for another
 * call: caching (auth_admin_keep) is polkit's business.
 */
#include <stdarg.h>
#include <unistd.h>

#include "auth.h"
#include "bus-util.h"
#include "errors.h"

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_IFACE "org.freedesktop.PolicyKit1.Authority"
/* Below the 25 s callers wait by default, so a hung polkit ends in a
 * clear AccessDenied, not the caller's own timeout; polkit may wait for a
 * person to type a password only when interaction was allowed. */
#define POLKIT_TIMEOUT_USEC (10 * G_USEC_PER_SEC)
#define POLKIT_INTERACTIVE_TIMEOUT_USEC (300 * G_USEC_PER_SEC)

struct QmAuth {
        sd_bus *bus;
        QmCalls *calls;
        QmAuthMode mode;
        uid_t own_uid;
        GHashTable *uids;    /* unique name -> uid + 1 */
        GHashTable *queries; /* sd_bus_message* -> AuthQuery */
        /* The call last allowed (its sender and cookie, not a reference:
         * a held message would keep the fds it carries open), and its
         * sender's uid: what qm_auth_sender_uid() answers while that call
         * is handled. */
        char *allowed_sender;
        uint64_t allowed_cookie;
        uid_t allowed_uid;
};

typedef struct {
        QmAuth *auth;
        sd_bus_message *call;
        sd_bus_slot *slot;
        gboolean done;
        sd_bus_error error; /* set: denied */
        QmAuthAction action;
        QmAuthAction owner_action;
        QmAuthAction asked; /* the action polkit is asked about */
        uid_t owner;
        uid_t uid;
        gboolean uid_known;
        gboolean uid_only; /* qm_auth_resolve_sender(): no verdict wanted */
        char *machine;
        char *command;
} AuthQuery;

static const char *const action_ids[] = {
        [QM_AUTH_ADMIN] = "org.qmachine.QMachine1.admin",
        [QM_AUTH_MANAGE] = "org.qmachine.QMachine1.manage",
        [QM_AUTH_CONSOLE] = "org.qmachine.QMachine1.console",
        [QM_AUTH_MONITOR] = "org.qmachine.QMachine1.monitor",
        [QM_AUTH_IMAGES] = "org.qmachine.QMachine1.images",
        [QM_AUTH_CREATE] = "org.qmachine.QMachine1.create",
        [QM_AUTH_GUEST] = "org.qmachine.QMachine1.guest",
        [QM_AUTH_NONE] = NULL,
};

static void query_free(gpointer p) {
        AuthQuery *q = p;
        sd_bus_slot_unref(q->slot);
        qm_calls_release(q->auth->calls, q->call);
        sd_bus_error_free(&q->error);
        g_free(q->machine);
        g_free(q->command);
        g_free(q);
}

QmAuth *qm_auth_new(sd_bus *bus, QmAuthMode mode, QmCalls *calls) {
        QmAuth *a = g_new0(QmAuth, 1);
        a->bus = bus;
        a->calls = calls;
        a->mode = mode;
        a->own_uid = geteuid();
        a->uids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        a->queries = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, query_free);
        return a;
}

void qm_auth_free(QmAuth *a) {
        if (!a)
                return;
        g_hash_table_unref(a->queries);
        g_hash_table_unref(a->uids);
        g_free(a->allowed_sender);
        g_free(a);
}

/*
 * The one decision from a caller's uid: 1 allowed, 0 polkit must be asked
 * about *@asked, < 0 denied (@error set).
 */
static int decide_for_uid(QmAuth *a, uid_t uid, QmAuthAction action, uid_t owner, QmAuthAction owner_action,
                          QmAuthAction *asked, sd_bus_error *error) {
        if (a->mode == QM_AUTH_SESSION) {
                /* the session's owner only; root is no exception here */
                if (uid == a->own_uid)
                        return 1;
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Only uid %u may use this session service", (unsigned)a->own_uid);
        }
        if (uid == 0)
                return 1;
        *asked = owner != QM_NO_OWNER && uid == owner ? owner_action : action;
        return *asked == QM_AUTH_NONE ? 1 : 0;
}

static int decide_query(AuthQuery *q, sd_bus_error *error) {
        return decide_for_uid(q->auth, q->uid, q->action, q->owner, q->owner_action, &q->asked, error);
}

/* The caller's uid if this daemon learned it already. */
static gboolean lookup_uid(QmAuth *a, const char *sender, uid_t *uid) {
        gpointer known = g_hash_table_lookup(a->uids, sender);

        if (!known)
                return FALSE;
        *uid = GPOINTER_TO_UINT(known) - 1;
        return TRUE;
}

static void remember_uid(QmAuth *a, const char *sender, uid_t uid) {
        g_hash_table_insert(a->uids, g_strdup(sender), GUINT_TO_POINTER(uid + 1));
}

/* The verdict is in (@denial NULL: allowed): run the handler again. */
static void query_finish(AuthQuery *q, const sd_bus_error *denial) {
        int r;

        q->done = TRUE;
        q->slot = sd_bus_slot_unref(q->slot);
        if (denial)
                sd_bus_error_copy(&q->error, denial);
        r = sd_bus_enqueue_for_read(q->auth->bus, q->call);
        if (r < 0) {
                g_warning("cannot requeue an authorized call: %s", g_strerror(-r));
                qm_reply_errorf(q->call, SD_BUS_ERROR_FAILED, "internal error after authorization");
                g_hash_table_remove(q->auth->queries, q->call);
        }
}

static void query_deny(AuthQuery *q, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void query_deny(AuthQuery *q, const char *name, const char *fmt, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        g_autofree char *message = NULL;
        va_list ap;

        va_start(ap, fmt);
        message = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        sd_bus_error_set(&e, name, message);
        query_finish(q, &e);
        sd_bus_error_free(&e);
}

static int on_polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        AuthQuery *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized = 0, challenge = 0;

        if (e) {
                /* Fail closed: no polkit, no access. */
                query_deny(q, SD_BUS_ERROR_ACCESS_DENIED, "Authorization failed: polkit is unavailable (%s)",
                           e->message ? e->message : e->name);
                return 0;
        }
        if (sd_bus_message_enter_container(reply, 'r', "bba{ss}") < 0 ||
            sd_bus_message_read(reply, "bb", &authorized, &challenge) < 0) {
                query_deny(q, SD_BUS_ERROR_ACCESS_DENIED,
                           "Authorization failed: polkit sent an unreadable answer");
                return 0;
        }
        if (authorized)
                query_finish(q, NULL);
        else if (challenge && !sd_bus_message_get_allow_interactive_authorization(q->call))
                query_deny(q, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                           "Interactive authentication is required for %s; call with interaction allowed",
                           action_ids[q->asked]);
        else
                query_deny(q, SD_BUS_ERROR_ACCESS_DENIED, "Not authorized: polkit denied %s",
                           action_ids[q->asked]);
        return 0;
}

static int ask_polkit(AuthQuery *q) {
        g_autoptr(sd_bus_message) m = NULL;
        gboolean interactive = sd_bus_message_get_allow_interactive_authorization(q->call) > 0;
        const char *verb = sd_bus_message_get_member(q->call);
        int r;

        r = sd_bus_message_new_method_call(q->auth->bus, &m, POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE,
                                           "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sa{sv})s", "system-bus-name", 1, "name", "s",
                                  sd_bus_message_get_sender(q->call), action_ids[q->asked]);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{ss}");
        if (r >= 0 && q->machine)
                r = sd_bus_message_append(m, "{ss}", "machine", q->machine);
        if (r >= 0 && verb)
                r = sd_bus_message_append(m, "{ss}", "verb", verb);
        if (r >= 0 && q->command)
                r = sd_bus_message_append(m, "{ss}", "command", q->command);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "us", (uint32_t)(interactive ? 1 : 0), "");
        if (r < 0)
                return r;
        return sd_bus_call_async(q->auth->bus, &q->slot, m, on_polkit_reply, q,
                                 interactive ? POLKIT_INTERACTIVE_TIMEOUT_USEC : POLKIT_TIMEOUT_USEC);
}

static int on_uid_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        sd_bus_error denial = SD_BUS_ERROR_NULL;
        AuthQuery *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t uid;
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        if (e || sd_bus_message_read(reply, "u", &uid) < 0) {
                query_deny(q, SD_BUS_ERROR_ACCESS_DENIED, "Cannot tell who the caller is: %s",
                           e && e->message ? e->message : "no answer from the bus");
                return 0;
        }
        remember_uid(q->auth, sd_bus_message_get_sender(q->call), uid);
        q->uid = uid;
        q->uid_known = TRUE;
        if (q->uid_only) {
                query_finish(q, NULL);
                return 0;
        }
        r = decide_query(q, &denial);
        if (r > 0)
                query_finish(q, NULL);
        else if (r < 0) {
                query_finish(q, &denial);
                sd_bus_error_free(&denial);
        } else if ((r = ask_polkit(q)) < 0)
                query_deny(q, SD_BUS_ERROR_ACCESS_DENIED, "Authorization failed: cannot ask polkit (%s)",
                           g_strerror(-r));
        return 0;
}

static AuthQuery *query_new(QmAuth *a, sd_bus_message *call, const QmAuthRequest *req) {
        AuthQuery *q = g_new0(AuthQuery, 1);

        q->auth = a;
        q->call = qm_calls_hold(a->calls, call);
        q->error = SD_BUS_ERROR_NULL;
        q->action = req->action;
        q->owner = req->owner;
        q->owner_action = req->owner_action;
        q->asked = req->action;
        q->machine = g_strdup(req->machine);
        q->command = g_strdup(req->command);
        g_hash_table_insert(a->queries, call, q);
        return q;
}

/* A sender never reuses a cookie on its connection, and a unique name
 * is never given twice: the pair names one call. */
static gboolean is_allowed_call(QmAuth *a, sd_bus_message *call) {
        uint64_t cookie;

        return a->allowed_sender && sd_bus_message_get_cookie(call, &cookie) >= 0 &&
               cookie == a->allowed_cookie &&
               g_strcmp0(sd_bus_message_get_sender(call), a->allowed_sender) == 0;
}

static void note_allowed(QmAuth *a, sd_bus_message *call, uid_t uid) {
        uint64_t cookie;

        g_clear_pointer(&a->allowed_sender, g_free);
        if (sd_bus_message_get_cookie(call, &cookie) < 0 || !sd_bus_message_get_sender(call))
                return;
        a->allowed_sender = g_strdup(sd_bus_message_get_sender(call));
        a->allowed_cookie = cookie;
        a->allowed_uid = uid;
}

/* Ask the bus daemon, which, unlike the message, knows the sender's uid. */
static int ask_uid(AuthQuery *q) {
        return sd_bus_call_method_async(q->auth->bus, &q->slot, "org.freedesktop.DBus",
                                        "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                        "GetConnectionUnixUser", on_uid_reply, q, "s",
                                        sd_bus_message_get_sender(q->call));
}

/* A check held earlier for @q's message: take its verdict, once. */
static int take_verdict(QmAuth *a, AuthQuery *q, sd_bus_error *error) {
        int r = 1;

        if (!q->done)
                return 0;
        if (sd_bus_error_is_set(&q->error))
                r = sd_bus_error_copy(error, &q->error);
        else if (q->uid_known)
                note_allowed(a, q->call, q->uid);
        g_hash_table_remove(a->queries, q->call);
        return r;
}

int qm_auth_check(QmAuth *a, sd_bus_message *call, QmAuthAction action, const char *machine,
                  const char *command, sd_bus_error *error) {
        QmAuthRequest req = {
                .action = action,
                .owner = QM_NO_OWNER,
                .owner_action = action,
                .machine = machine,
                .command = command,
        };

        return qm_auth_check_request(a, call, &req, error);
}

/*
 * What every check does first: *@done is set when the answer is already
 * known, the verdict of a query held for @call (once) or the refusal of a
 * call without a sender; then return that.
 */
static int take_known_answer(QmAuth *a, sd_bus_message *call, gboolean *done, sd_bus_error *error) {
        AuthQuery *q = g_hash_table_lookup(a->queries, call);

        *done = TRUE;
        if (q)
                return take_verdict(a, q, error);
        if (!sd_bus_message_get_sender(call))
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller without a bus name");
        *done = FALSE;
        return 0;
}

int qm_auth_check_request(QmAuth *a, sd_bus_message *call, const QmAuthRequest *req, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(call);
        gboolean known, done;
        AuthQuery *q;
        uid_t uid;
        int r;

        r = take_known_answer(a, call, &done, error);
        if (done)
                return r;
        /* Every method that may hold its message comes through here first. */
        r = qm_calls_admit(a->calls, call, error);
        if (r < 0)
                return r;

        known = lookup_uid(a, sender, &uid);
        if (known) {
                QmAuthAction asked = req->action;
                r = decide_for_uid(a, uid, req->action, req->owner, req->owner_action, &asked, error);
                if (r > 0)
                        note_allowed(a, call, uid);
                if (r != 0)
                        return r;
                q = query_new(a, call, req);
                q->uid = uid;
                q->uid_known = TRUE;
                q->asked = asked;
        } else
                q = query_new(a, call, req);
        r = known ? ask_polkit(q) : ask_uid(q);
        if (r < 0) {
                g_hash_table_remove(a->queries, call);
                if (known)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                 "Authorization failed: cannot ask polkit (%s)",
                                                 g_strerror(-r));
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Authorization failed: %s",
                                         g_strerror(-r));
        }
        return 0;
}

gboolean qm_auth_sender_uid(QmAuth *a, sd_bus_message *call, uid_t *uid) {
        const char *sender = sd_bus_message_get_sender(call);

        if (is_allowed_call(a, call)) {
                *uid = a->allowed_uid;
                return TRUE;
        }
        return sender && lookup_uid(a, sender, uid);
}

int qm_auth_resolve_sender(QmAuth *a, sd_bus_message *call, sd_bus_error *error) {
        static const QmAuthRequest uid_only = { .action = QM_AUTH_NONE, .owner = QM_NO_OWNER };
        const char *sender = sd_bus_message_get_sender(call);
        gboolean done;
        AuthQuery *q;
        uid_t uid;
        int r;

        r = take_known_answer(a, call, &done, error);
        if (done)
                return r;
        if (lookup_uid(a, sender, &uid))
                return 1;
        r = qm_calls_admit(a->calls, call, error);
        if (r < 0)
                return r;
        q = query_new(a, call, &uid_only);
        q->uid_only = TRUE;
        r = ask_uid(q);
        if (r < 0) {
                g_hash_table_remove(a->queries, call);
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot tell who the caller is: %s",
                                         g_strerror(-r));
        }
        return 0;
}

void qm_auth_forget_client(QmAuth *a, const char *unique_name) {
        GHashTableIter it;
        AuthQuery *q;

        g_hash_table_remove(a->uids, unique_name);
        g_hash_table_iter_init(&it, a->queries);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&q))
                if (g_strcmp0(sd_bus_message_get_sender(q->call), unique_name) == 0)
                        g_hash_table_iter_remove(&it);
}
