/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the libFuzzer targets: fatal GLib criticals, invariant checks,
 * and fuzzer-chosen split points. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Criticals always abort; warnings too unless the code under test logs
 * them on bad input by design (the QMP client, the definition loader).
 * Everything else is dropped: printing slows the fuzzer down. */
void fuzz_init_logging(gboolean warnings_fatal);

/* An invariant failed: print why and abort, so libFuzzer keeps the input. */
#define fuzz_assert(cond, ...)                                                                   \
        do {                                                                                     \
                if (!(cond))                                                                     \
                        fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                       \
        } while (0)
G_NORETURN void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
        G_GNUC_PRINTF(4, 5);

/* What may go to D-Bus as a string: valid UTF-8, no NUL. */
gboolean fuzz_text_ok(const char *s, gssize len);

/*
 * Split points the fuzzer controls: the first two bytes of an input seed a
 * small PRNG and pick the largest piece (1 to 4096 bytes), the rest is the
 * payload. Returns FALSE if the input is too short for a header.
 */
typedef struct {
        guint32 state;
        gsize max_piece;
} FuzzSplit;

gboolean fuzz_split_init(FuzzSplit *s, const uint8_t **data, size_t *size);
/* The length of the next piece, 1..MIN(max_piece, left). */
gsize fuzz_split_next(FuzzSplit *s, gsize left);
