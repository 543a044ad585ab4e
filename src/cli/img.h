/* SPDX-License-Identifier: MIT */
/*
 * `vireo img` internals shared by src/cli/img*.c (nothing else includes this).
 *
 * Contract of every subcommand (int img_cmd_<name>(int argc, char **argv), argv[0] = name):
 * - returns the process exit status: 0 success, 1 error, 2 bad usage (check has its own
 *   statuses, see img_check.c); it never calls exit() itself;
 * - every failure is exactly one line on stderr, "vireo: img <cmd>: <what and why>";
 *   usage errors end with a hint "(try 'vireo img <cmd> --help')";
 * - results go to stdout (human text, or JSON with --json / --output=json).
 *
 * Formats: a format given with -f is trusted. Without -f the format is guessed
 * (img_probe_format), and a guess is never used to follow a backing file: a guessed qcow2
 * that names one is refused until the format is named (see img_cli_open), except where no
 * backing file is opened at all (info without --backing-chain: IMG_O_NO_BACKING).
 */
#ifndef VIREO_CLI_IMG_H
#define VIREO_CLI_IMG_H

#include "block/image.h"
#include "block/qcow2.h"
#include "common/compiler.h"

#include <getopt.h>
#include <stdio.h>

/* img_check.c's statuses, as qemu-img's. */
enum {
	IMG_EXIT_CHECK_CORRUPT = 2,
	IMG_EXIT_CHECK_LEAKS = 3,
	IMG_EXIT_CHECK_UNSUPPORTED = 63,
};

int img_cmd_create(int argc, char **argv);
int img_cmd_info(int argc, char **argv);
int img_cmd_check(int argc, char **argv);
int img_cmd_convert(int argc, char **argv);
int img_cmd_resize(int argc, char **argv);
int img_cmd_snapshot(int argc, char **argv);
int img_cmd_commit(int argc, char **argv);
int img_cmd_map(int argc, char **argv);

/* ---- messages (img.c) ---- */

/* "vireo: img <cmd>: <msg> (try 'vireo img <cmd> --help')"; returns CLI_EXIT_USAGE. */
int img_usage_error(const char *cmd, const char *fmt, ...) PRINTF_FMT(2, 3);
/* "vireo: img <cmd>: <msg>"; returns CLI_EXIT_ERROR. */
int img_fail(const char *cmd, const char *fmt, ...) PRINTF_FMT(2, 3);
/*
 * getopt_long result that is not an option of the command (':' or '?', optstring starts
 * with ':'): prints the matching usage error and returns CLI_EXIT_USAGE.
 */
int img_getopt_error(const char *cmd, int o, char **argv);
/* Positional arguments: `min`..`max` left after the options, else a usage error naming
 * what is missing ("missing <names>"); 0 when fine. */
int img_want_args(const char *cmd, int argc, char **argv, int min, int max, const char *names);

/* --output=human|json (info, check, map). 0 or a usage error status. */
int img_output_arg(const char *cmd, const char *v, bool *json);

/* ---- values ---- */

/*
 * Size as qemu-img takes it: digits with an optional fraction and suffix k/K, M, G, T, P,
 * E (powers of 1024; "KiB"/"KB" forms too; b/B = bytes). No sign, no spaces, no hex; a
 * fraction needs a suffix. 0, -EINVAL or -ERANGE.
 */
int img_parse_size(const char *s, uint64_t *out) WUR;
/* Known format names ("raw", "qcow2", "vmdk", "vhd"); writable = raw and qcow2 only. */
bool img_format_known(const char *fmt);
bool img_format_writable(const char *fmt);
/* Usage error unless fmt is a known format (writable ones only when `writable`). */
int img_check_format_arg(const char *cmd, const char *opt, const char *fmt, bool writable);
/* "64 MiB", "1.5 GiB", "196 KiB", "0 B" (3 significant digits) into buf. */
void img_human_size(uint64_t v, char *buf, size_t len);
/* Bytes allocated on disk for path (st_blocks * 512); 0 when it cannot be stat'ed. */
uint64_t img_disk_usage(const char *path);

/* ---- opening images ---- */

/*
 * Open path for command cmd: as `fmt` when given; else as the guessed format (*probed set
 * true), refusing a guessed qcow2 that names a backing file (unless flags has
 * IMG_O_NO_BACKING, which opens no backing file). Always IMG_O_QUIET: problems found in
 * the image are printed by the command (img_req_error), not logged. On failure prints the
 * error ("vireo: img <cmd>: image 'x': ...") and returns an exit status; 0 on success.
 */
int img_cli_open(const char *cmd, const char *path, const char *fmt, unsigned flags,
		 struct img **out, bool *probed);
/*
 * Why a request on im failed, for a message: the reason the image recorded
 * (img_last_error: "L2 table 0x... entry 3 (...): cluster offset beyond end of file") when
 * ret is -EIO or -ENOLINK and there is one, else strerror(-ret). Written into buf.
 */
const char *img_req_error(struct img *im, int ret, char *buf, size_t len);
/* The format name of an open image ("raw", "qcow2", ...). */
const char *img_fmt_name(const struct img *im);

/* ---- creating images (img_create.c) ---- */

enum img_prealloc {
	IMG_PREALLOC_OFF,
	IMG_PREALLOC_METADATA,
	IMG_PREALLOC_FALLOC,
	IMG_PREALLOC_FULL
};

/* What create and convert make: format, -o options, backing file. */
struct img_create_spec {
	const char *fmt; /* "raw" or "qcow2" */
	uint64_t size;
	bool size_set;
	unsigned cluster_size, version, refcount_bits; /* 0 = qcow2_create's defaults */
	const char *compression;		       /* "zlib", "zstd"; NULL = zlib */
	enum img_prealloc prealloc;
	const char *backing, *backing_fmt;
	bool unsafe;		/* -u: do not open the backing file */
	const char *qcow2_only; /* a qcow2-only option that was given (for raw's error) */
	bool help_shown;	/* "-o help" printed the list: stop, exit 0 */
};
void img_create_spec_init(struct img_create_spec *c, const char *fmt);
/* Parse one -o argument (modified in place; values point into it). 0 or an exit status. */
int img_create_parse_opts(const char *cmd, struct img_create_spec *c, char *opts);
/* Option combinations that cannot work for c->fmt: 0 or a usage error status. */
int img_create_validate(const char *cmd, const struct img_create_spec *c);
/* Create path (size rounded up to 512; backing format settled and checked). 0 or status. */
int img_create_file(const char *cmd, struct img_create_spec *c, const char *path);

/* ---- snapshots (img_snapshot.c) ---- */

struct img_json;
/* "Snapshot list:" and a table as qemu-img prints it. */
void img_snapshot_table(FILE *f, const struct qcow2_snapshot_info *s, unsigned n);
/* An array `key` of snapshot objects ("id", "name", "vm-state-size", "date-sec", ...). */
void img_snapshot_json(struct img_json *w, const char *key, const struct qcow2_snapshot_info *s,
		       unsigned n);

/* ---- JSON output (img_json.c) ---- */

/*
 * A tiny pretty-printing JSON writer. key is NULL inside arrays and for the top value.
 * Strings are escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is
 * always valid JSON whatever a file name contains.
 */
struct img_json {
	FILE *f;
	unsigned depth;
	bool need_comma;
};
void img_json_init(struct img_json *w, FILE *f);
void img_json_obj_begin(struct img_json *w, const char *key);
void img_json_obj_end(struct img_json *w);
void img_json_arr_begin(struct img_json *w, const char *key);
void img_json_arr_end(struct img_json *w);
void img_json_str(struct img_json *w, const char *key, const char *v);
void img_json_u64(struct img_json *w, const char *key, uint64_t v);
void img_json_i64(struct img_json *w, const char *key, int64_t v);
void img_json_bool(struct img_json *w, const char *key, bool v);
/* Ends the document with a newline. */
void img_json_finish(struct img_json *w);

#endif
