/* D-Bus error names of the qmachined contract and helpers to raise them. */
#include <glib.h>
#include <stdarg.h>
#pragma once

#include <systemd/sd-bus.h>

#define QM_ERROR_PREFIX "org.qmachine.QMachine1.Error."
#define QM_ERROR_NO_SUCH_MACHINE   QM_ERROR_PREFIX "NoSuchMachine"
#define QM_ERROR_MACHINE_EXISTS    QM_ERROR_PREFIX "MachineExists"
#define QM_ERROR_ALREADY_RUNNING   QM_ERROR_PREFIX "AlreadyRunning"
#define QM_ERROR_NOT_RUNNING       QM_ERROR_PREFIX "NotRunning"
#define QM_ERROR_BUSY              QM_ERROR_PREFIX "Busy"
#define QM_ERROR_LAUNCH_FAILED     QM_ERROR_PREFIX "LaunchFailed"
#define QM_ERROR_ABNORMAL_SHUTDOWN QM_ERROR_PREFIX "AbnormalShutdown"
#define QM_ERROR_NO_MONITOR        QM_ERROR_PREFIX "NoMonitor"
#define QM_ERROR_QMP_ERROR         QM_ERROR_PREFIX "QmpError"
#define QM_ERROR_QMP_DISCONNECTED  QM_ERROR_PREFIX "QmpDisconnected"
#define QM_ERROR_TIMEOUT           QM_ERROR_PREFIX "Timeout"
#define QM_ERROR_LIMIT_EXCEEDED    QM_ERROR_PREFIX "LimitExceeded"
#define QM_ERROR_NO_CONSOLE        QM_ERROR_PREFIX "NoConsole"
#define QM_ERROR_DEAD              QM_ERROR_PREFIX "Dead"
#define QM_ERROR_MIGRATE_FAILED    QM_ERROR_PREFIX "MigrateFailed"
#define QM_ERROR_MIGRATE_TIMEOUT   QM_ERROR_PREFIX "MigrateTimeout"
#define QM_ERROR_MIGRATE_CANCELLED QM_ERROR_PREFIX "MigrateCancelled"
#define QM_ERROR_NO_SUCH_IMAGE     QM_ERROR_PREFIX "NoSuchImage"
#define QM_ERROR_IMAGE_EXISTS      QM_ERROR_PREFIX "ImageExists"
#define QM_ERROR_IMAGE_CHECK_FAILED QM_ERROR_PREFIX "ImageCheckFailed"
/* Version 2: guest access. */
#define QM_ERROR_PORT_NOT_REDIRECTED QM_ERROR_PREFIX "PortNotRedirected"
#define QM_ERROR_NO_SUCH_NIC         QM_ERROR_PREFIX "NoSuchNic"
#define QM_ERROR_NO_GUEST_AGENT      QM_ERROR_PREFIX "NoGuestAgent"
#define QM_ERROR_GUEST_AGENT_UNAVAILABLE QM_ERROR_PREFIX "GuestAgentUnavailable"
#define QM_ERROR_GUEST_EXEC_FAILED   QM_ERROR_PREFIX "GuestExecFailed"
/* Version 2: migration between hosts. */
#define QM_ERROR_MIGRATED            QM_ERROR_PREFIX "Migrated"
/* Not in API.md's table: the state directory or the image store could not
 * be written (ENOSPC, EROFS, EACCES...); the message gives the reason. */
#define QM_ERROR_STORAGE_FAILED    QM_ERROR_PREFIX "StorageFailed"

#define QM_ERROR_INVALID_ARGS      SD_BUS_ERROR_INVALID_ARGS

/* A failure carried from an asynchronous operation to the D-Bus reply:
 * an error name plus a message a person can act on. */
typedef struct {
        char *name;
        char *message;
} QmError;

QmError *qm_error_new(const char *name, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
QmError *qm_error_newv(const char *name, const char *fmt, va_list ap) G_GNUC_PRINTF(2, 0);
/* The error name for a failed system call: LimitExceeded when the daemon
 * is out of fds (EMFILE, ENFILE), else org.freedesktop.DBus.Error.Failed. */
const char *qm_error_name_for_errno(int e);
void qm_error_free(QmError *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmError, qm_error_free)
