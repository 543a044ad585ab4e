/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the image format tests: scratch directories, running qemu-img/qemu-io
 * (fork/exec, output captured), deterministic random data, whole-image comparison.
 * Tests that need qemu tools call tu_have_qemu() and skip with a message without them.
 */
#ifndef VIREO_TESTS_IMG_TEST_UTIL_H
#define VIREO_TESTS_IMG_TEST_UTIL_H

#include "block/image.h"

#include <stddef.h>
#include <stdint.h>

/* Fresh directory under $TMPDIR or /tmp; tu_rmtree removes it. Returns a static-free copy. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *dir);
/* "dir/name" in a malloc'd string. */
char *tu_path(const char *dir, const char *name);

/* Run argv (NULL-terminated); output (stdout+stderr) into out if given. Returns the exit
 * status, or -1 when the program could not be run. */
int tu_run(char *const argv[], char *out, size_t outlen);
/* tu_run("qemu-img", args..., NULL) / "qemu-io". */
int tu_qemu_img(char *out, size_t outlen, ...);
int tu_qemu_io(char *out, size_t outlen, ...);
bool tu_have_qemu(void);

/* xorshift PRNG. */
uint64_t tu_rand(uint64_t *st);
void tu_fill(void *buf, size_t len, uint64_t *st);

int tu_write_file(const char *path, const void *buf, size_t len);
/* Whole file into a malloc'd buffer. */
int tu_read_file(const char *path, uint8_t **buf, size_t *len);

/* Read all of `im` and compare with buf/len; returns the first differing offset or -1. */
int64_t tu_compare_image(struct img *im, const uint8_t *buf, size_t len);

#endif
