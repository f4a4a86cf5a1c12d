/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON text laid out again without being converted: QEMU's numbers and
 * strings go through byte for byte (json-glib keeps integers as int64 and
 * would print 18446744073709551615 as -1). */
#pragma once

#include <glib.h>

/* How qm_json_reformat() lays the text out. */
typedef enum {
        QM_JSON_LAYOUT_COMPACT, /* no whitespace at all */
        QM_JSON_LAYOUT_PRETTY,  /* json-glib's pretty generator, indent 2 */
} QmJsonLayout;

/*
 * @len bytes of @text, one strict JSON value (qm_json_check_len()), laid
 * out again: whitespace between tokens dropped or put where json-glib's
 * generator puts it (`"key" : value`, one element a line, an empty object
 * as `{` + the closing indent + `}`), strings with their escapes and
 * numbers exactly as they are. NULL when @text is not such a value.
 */
char *qm_json_reformat(const char *text, gsize len, QmJsonLayout layout);
