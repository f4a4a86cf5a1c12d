/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What survives the daemon: machine definitions (state directory) and
 * records of running VMs (runtime directory). */
#pragma once

#include <sys/types.h>

#include "config.h"
#include "port-forward.h"

/* <state>/machines/NAME.json: the definition of a persistent machine. */
typedef struct {
        char *name;
        QmConfig *config;
        guint64 event_sequence; /* numbers used so far */
        char *migrated_to;      /* state migrated: where the guest went; else NULL */
} QmDefinition;

void qm_definition_free(QmDefinition *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmDefinition, qm_definition_free)

char *qm_definition_path(const char *dir, const char *name);
gboolean qm_definition_save(const char *dir, const char *name, const QmConfig *config, guint64 event_sequence,
                            GError **error);
/* The same, with "migrated": @migrated_to unless NULL (the guest runs
 * elsewhere: a restarted daemon must not launch it). */
gboolean qm_definition_save_migrated(const char *dir, const char *name, const QmConfig *config,
                                     guint64 event_sequence, const char *migrated_to, GError **error);
/* Success when it is gone, also when it was not there. */
gboolean qm_definition_remove(const char *dir, const char *name, GError **error);
/* Every valid NAME.json in @dir, sorted by name. A file that cannot be
 * read or parsed is logged and moved aside to NAME.json.corrupt. */
GPtrArray *qm_definitions_load(const char *dir);

/* <runtime>/NAME/record.json: a running VM, enough to take it back. */
typedef struct {
        char *name;
        QmConfig *config;
        pid_t pid;
        guint64 start_time; /* /proc/PID/stat field 22: guards against PID reuse */
        guint64 launch_timestamp;
        char **command_line;
        guint64 event_sequence_mark; /* event numbers up to here may be used */
        char *qemu_version;
        gboolean quit_issued;
        GArray *forwarded_ports; /* QmPortPair of this run; NULL or empty: none */
        /* PrepareIncoming's migration still under way: where QEMU listens
         * (NULL: none), and what to do once the guest arrived. */
        char *incoming_uri;
        gboolean incoming_persistent;
        gboolean incoming_paused;
        /* A Migrate of this QEMU under way: its URI (NULL: none), and
         * whether the guest was paused before it. */
        char *migrating_to;
        gboolean migrating_was_paused;
        /* A Save under way: the guest ran before it, and the
         * max-bandwidth to put back (-1: unknown). */
        gboolean saving;
        gboolean saving_was_running;
        gint64 saving_bandwidth;
        /* A Restore under way, and whether the guest stays paused. */
        gboolean restoring;
        gboolean restoring_paused;
} QmRunRecord;

void qm_run_record_free(QmRunRecord *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmRunRecord, qm_run_record_free)
gboolean qm_run_record_save(const char *path, const QmRunRecord *r, GError **error);
QmRunRecord *qm_run_record_load(const char *path, GError **error);

/* Start time and state letter of a process from /proc; FALSE if gone. */
gboolean qm_process_stat(pid_t pid, guint64 *start_time, char *state);
