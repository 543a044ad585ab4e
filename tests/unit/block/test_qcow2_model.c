/* SPDX-License-Identifier: MIT */
/*
 * Shadow-model test for the qcow2 driver: seeded random programs of writes (unaligned,
 * split iovecs), reads, discards, write-zeroes, flushes, close/reopen and snapshot
 * create/apply/delete/read and whole-cluster compressed writes (compressible or not), every
 * read compared with an in-memory model of the disk.
 * Every 37 operations a copy of the file as it stands (caches unflushed: what a crash
 * would leave) must check clean apart from leaks, by our check and now and then qemu's.
 * Afterwards the image must pass our own check with no errors and no leaks, and
 * `qemu-img check` (no errors) and `qemu-img compare` against the model as a raw file;
 * each remaining snapshot exported by qemu-img must equal the model's copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "common/log.h"
#include "img_test_util.h"

#define MAX_SNAPS 6

struct cfg {
	const char *name;
	unsigned version, cluster_size, refcount_bits;
	uint64_t size;
	uint64_t backing_size; /* 0: no backing file */
	bool snapshots;
	unsigned ops;
	uint64_t seed;
	unsigned maxw;	/* longest write in clusters (default 3) */
	unsigned flags; /* img_open flags */
	const char *compression; /* NULL: zlib */
};

struct run {
	const struct cfg *c;
	char *dir, *path, *base_path;
	struct img *im;
	uint8_t *model, *base, *buf;
	uint8_t *snap[MAX_SNAPS];
	char snap_name[MAX_SNAPS][16];
	unsigned nsnap, snap_seq;
	uint64_t rng;
	unsigned counts[16];
};

enum { OP_WRITE, OP_READ, OP_DISCARD, OP_ZERO, OP_FLUSH, OP_REOPEN, OP_SNAP_CREATE,
       OP_SNAP_APPLY, OP_SNAP_DELETE, OP_SNAP_READ, OP_CHECK, OP_COMPRESS, OP_NR };

static void reopen(struct run *r)
{
	char err[512] = "";
	if (r->im)
		img_close(r->im);
	int ret = img_open(&r->im, r->path, "qcow2", r->c->flags, err, sizeof(err));
	if (ret)
		fprintf(stderr, "reopen: %s\n", err);
	assert_int_equal(ret, 0);
	assert_true(r->im->size == r->c->size);
}

static void rand_range(struct run *r, uint64_t maxlen, uint64_t *off, uint64_t *len)
{
	uint64_t size = r->c->size, cs = r->c->cluster_size;
	uint64_t x = tu_rand(&r->rng);

	*off = tu_rand(&r->rng) % size;
	if (x % 4 == 0)
		*off = ALIGN_DOWN(*off, cs); /* sometimes cluster aligned */
	*len = 1 + tu_rand(&r->rng) % maxlen;
	if (x % 8 == 1)
		*len = ALIGN_UP(*len, cs);
	if (*len > size - *off)
		*len = size - *off;
}

/* What a fully discarded cluster reads as afterwards. */
static void model_discard(struct run *r, uint64_t off, uint64_t len)
{
	uint64_t cs = r->c->cluster_size, end = off + len;
	uint64_t fs = ALIGN_UP(off, cs), fe = end == r->c->size ? ALIGN_UP(end, cs) : ALIGN_DOWN(end, cs);
	if (fe > r->c->size)
		fe = r->c->size;
	if (fs >= fe)
		return;
	if (r->c->version < 3 && r->c->backing_size)
		memcpy(r->model + fs, r->base + fs, fe - fs); /* v2: backing shows through */
	else
		memset(r->model + fs, 0, fe - fs);
}

static void do_write(struct run *r)
{
	uint64_t off, len;
	struct iovec iov[4];
	int n = 0;
	size_t pos = 0;

	rand_range(r, (r->c->maxw ? r->c->maxw : 3) * (uint64_t)r->c->cluster_size, &off, &len);
	tu_fill(r->buf, len, &r->rng);
	/* split into up to 4 pieces at random points */
	while (pos < len && n < 4) {
		size_t piece = n == 3 ? len - pos : 1 + tu_rand(&r->rng) % (len - pos);
		iov[n].iov_base = r->buf + pos;
		iov[n++].iov_len = piece;
		pos += piece;
	}
	assert_int_equal(img_pwritev(r->im, iov, n, off), 0);
	memcpy(r->model + off, r->buf, len);
}

/* One whole cluster through qcow2_write_compressed: half the time data that compresses. */
static void do_compress(struct run *r)
{
	uint64_t cs = r->c->cluster_size, off = ALIGN_DOWN(tu_rand(&r->rng) % r->c->size, cs);
	size_t len = (size_t)MIN(cs, r->c->size - off);

	tu_fill(r->buf, len, &r->rng);
	if (tu_rand(&r->rng) & 1)
		for (size_t i = 48; i < len; i++)
			r->buf[i] = r->buf[i % 48];
	assert_int_equal(qcow2_write_compressed(r->im, r->buf, len, off), 0);
	memcpy(r->model + off, r->buf, len);
}

static void verify(struct run *r, const uint8_t *expect, uint64_t off, uint64_t len,
		   const char *what)
{
	if (memcmp(r->buf, expect + off, len)) {
		for (uint64_t i = 0; i < len; i++)
			if (r->buf[i] != expect[off + i]) {
				fprintf(stderr, "%s %s: mismatch at 0x%llx (read 0x%llx+0x%llx): got %02x want %02x\n",
					r->c->name, what, (unsigned long long)(off + i),
					(unsigned long long)off, (unsigned long long)len, r->buf[i],
					expect[off + i]);
				break;
			}
		fail();
	}
}

static void do_read(struct run *r)
{
	uint64_t off, len;
	rand_range(r, 4 * r->c->cluster_size, &off, &len);
	memset(r->buf, 0xcc, len);
	assert_int_equal(img_pread(r->im, r->buf, len, off), 0);
	verify(r, r->model, off, len, "read");
}

static void check_clean(struct run *r)
{
	struct qcow2_check_result res;
	assert_int_equal(qcow2_check(r->im, false, &res), 0);
	if (res.corruptions || res.leaks || res.overlaps || res.out_of_range)
		fprintf(stderr, "%s: check corruptions %llu leaks %llu overlaps %llu oor %llu\n",
			r->c->name, (unsigned long long)res.corruptions,
			(unsigned long long)res.leaks, (unsigned long long)res.overlaps,
			(unsigned long long)res.out_of_range);
	assert_true(res.corruptions == 0 && res.leaks == 0);
	assert_true(res.overlaps == 0 && res.out_of_range == 0);
}

static void do_snapshot_op(struct run *r, int op)
{
	unsigned i = r->nsnap ? (unsigned)(tu_rand(&r->rng) % r->nsnap) : 0;
	uint64_t off, len;

	switch (op) {
	case OP_SNAP_CREATE:
		if (r->nsnap == MAX_SNAPS)
			return;
		snprintf(r->snap_name[r->nsnap], sizeof(r->snap_name[0]), "s%u", r->snap_seq++);
		assert_int_equal(qcow2_snapshot_create(r->im, r->snap_name[r->nsnap]), 0);
		assert_int_equal(qcow2_snapshot_create(r->im, r->snap_name[r->nsnap]), -EEXIST);
		r->snap[r->nsnap] = malloc(r->c->size);
		assert_non_null(r->snap[r->nsnap]);
		memcpy(r->snap[r->nsnap], r->model, r->c->size);
		r->nsnap++;
		break;
	case OP_SNAP_APPLY:
		if (!r->nsnap)
			return;
		assert_int_equal(qcow2_snapshot_apply(r->im, r->snap_name[i]), 0);
		memcpy(r->model, r->snap[i], r->c->size);
		break;
	case OP_SNAP_DELETE:
		if (!r->nsnap)
			return;
		assert_int_equal(qcow2_snapshot_delete(r->im, r->snap_name[i]), 0);
		assert_int_equal(qcow2_snapshot_delete(r->im, r->snap_name[i]), -ENOENT);
		free(r->snap[i]);
		r->nsnap--;
		r->snap[i] = r->snap[r->nsnap];
		memcpy(r->snap_name[i], r->snap_name[r->nsnap], sizeof(r->snap_name[0]));
		break;
	case OP_SNAP_READ:
		if (!r->nsnap)
			return;
		rand_range(r, 4 * r->c->cluster_size, &off, &len);
		assert_int_equal(qcow2_snapshot_pread(r->im, r->snap_name[i], r->buf, len, off), 0);
		verify(r, r->snap[i], off, len, "snapshot read");
		break;
	}
}

/*
 * What a crash right now would leave: the file as written so far (metadata caches not
 * flushed). It must be consistent: leaked clusters are allowed, nothing else.
 */
static void crash_check(struct run *r, bool with_qemu)
{
	char *copy = tu_path(r->dir, "crash.qcow2"), err[512];
	struct qcow2_check_result res;
	struct img *im;
	uint8_t *bytes;
	size_t len;

	assert_int_equal(tu_read_file(r->path, &bytes, &len), 0);
	assert_int_equal(tu_write_file(copy, bytes, len), 0);
	free(bytes);
	int ret = img_open(&im, copy, "qcow2", IMG_O_RDONLY, err, sizeof(err));
	if (ret)
		fprintf(stderr, "crash copy: %s\n", err);
	assert_int_equal(ret, 0);
	assert_int_equal(qcow2_check(im, false, &res), 0);
	if (res.corruptions || res.overlaps || res.out_of_range)
		fprintf(stderr, "%s crash copy: corruptions %llu overlaps %llu oor %llu\n",
			r->c->name, (unsigned long long)res.corruptions,
			(unsigned long long)res.overlaps, (unsigned long long)res.out_of_range);
	assert_true(!res.corruptions && !res.overlaps && !res.out_of_range);
	img_close(im);
	if (with_qemu) {
		char out[2048];
		int st = tu_qemu_img(out, sizeof(out), "check", copy, NULL);
		if (st != 0 && st != 3)
			fprintf(stderr, "%s crash copy: qemu-img check %d\n%s\n", r->c->name, st, out);
		assert_true(st == 0 || st == 3);
	}
	free(copy);
}

static int pick_op(struct run *r)
{
	static const int weights[OP_NR] = { 34, 26, 8, 8, 3, 3, 3, 2, 2, 4, 1, 6 };
	int total = 0, x;
	for (int i = 0; i < OP_NR; i++)
		total += weights[i];
	x = (int)(tu_rand(&r->rng) % (uint64_t)total);
	for (int i = 0; i < OP_NR; i++) {
		if (x < weights[i])
			return i;
		x -= weights[i];
	}
	return OP_READ;
}

static void qemu_verify(struct run *r)
{
	char out[4096], *raw = tu_path(r->dir, "model.raw");
	int st;

	assert_int_equal(tu_write_file(raw, r->model, r->c->size), 0);
	st = tu_qemu_img(out, sizeof(out), "check", "-f", "qcow2", r->path, NULL);
	if (st != 0)
		fprintf(stderr, "%s: qemu-img check exit %d:\n%s\n", r->c->name, st, out);
	assert_true(st == 0 || st == 3); /* 3: leaked clusters only */
	st = tu_qemu_img(out, sizeof(out), "compare", "-f", "qcow2", "-F", "raw", r->path, raw,
			 NULL);
	if (st != 0)
		fprintf(stderr, "%s: qemu-img compare exit %d:\n%s\n", r->c->name, st, out);
	assert_int_equal(st, 0);
	for (unsigned i = 0; i < r->nsnap; i++) {
		char opt[64];
		uint8_t *got;
		size_t len;
		snprintf(opt, sizeof(opt), "snapshot.name=%s", r->snap_name[i]);
		st = tu_qemu_img(out, sizeof(out), "convert", "-f", "qcow2", "-l", opt, "-O", "raw",
				 r->path, raw, NULL);
		if (st)
			fprintf(stderr, "qemu-img convert -l %s: %s\n", opt, out);
		assert_int_equal(st, 0);
		assert_int_equal(tu_read_file(raw, &got, &len), 0);
		assert_true(len == r->c->size);
		assert_memory_equal(got, r->snap[i], len);
		free(got);
	}
	free(raw);
}

static void run_model(void **state)
{
	const struct cfg *c = *state;
	struct run r = { .c = c, .rng = c->seed * 0x9e3779b97f4a7c15ull + 1 };
	struct qcow2_create_opts o = {
		.size = c->size, .cluster_size = c->cluster_size, .version = c->version,
		.refcount_bits = c->refcount_bits, .compression = c->compression,
	};
	char err[512] = "";

	r.dir = tu_mkdtemp();
	assert_non_null(r.dir);
	r.path = tu_path(r.dir, "disk.qcow2");
	r.model = calloc(1, c->size);
	r.base = calloc(1, c->size);
	r.buf = malloc((MAX(c->maxw, 4) + 4) * (size_t)c->cluster_size);
	assert_true(r.model && r.base && r.buf);
	if (c->backing_size) {
		r.base_path = tu_path(r.dir, "base.raw");
		tu_fill(r.base, c->backing_size, &r.rng);
		assert_int_equal(tu_write_file(r.base_path, r.base, c->backing_size), 0);
		memcpy(r.model, r.base, c->size);
		o.backing_file = "base.raw";
		o.backing_fmt = "raw";
	}
	bool qemu = tu_have_qemu();
	if (qcow2_create(r.path, &o, err, sizeof(err)))
		fprintf(stderr, "create: %s\n", err);
	reopen(&r);
	for (unsigned i = 0; i < c->ops; i++) {
		int op = pick_op(&r);
		uint64_t off, len;
		if (!c->snapshots && op >= OP_SNAP_CREATE && op <= OP_SNAP_READ)
			op = OP_WRITE;
		r.counts[op]++;
		switch (op) {
		case OP_WRITE: do_write(&r); break;
		case OP_READ: do_read(&r); break;
		case OP_DISCARD:
			rand_range(&r, 6 * c->cluster_size, &off, &len);
			assert_int_equal(img_discard(r.im, off, len), 0);
			model_discard(&r, off, len);
			break;
		case OP_ZERO:
			rand_range(&r, 6 * c->cluster_size, &off, &len);
			assert_int_equal(img_write_zeroes(r.im, off, len, tu_rand(&r.rng) & 1), 0);
			memset(r.model + off, 0, len);
			break;
		case OP_FLUSH: assert_int_equal(img_flush(r.im), 0); break;
		case OP_REOPEN: reopen(&r); break;
		case OP_CHECK: check_clean(&r); break;
		case OP_COMPRESS: do_compress(&r); break;
		default: do_snapshot_op(&r, op); break;
		}
		if (i % 37 == 36)
			crash_check(&r, i % 740 == 739 && qemu);
	}
	/* full read-back, then the same after a reopen */
	assert_true(tu_compare_image(r.im, r.model, c->size) == -1);
	reopen(&r);
	assert_true(tu_compare_image(r.im, r.model, c->size) == -1);
	check_clean(&r);
	img_close(r.im);
	fprintf(stderr, "%s: %u ops (w %u r %u disc %u zero %u flush %u reopen %u snap c/a/d/r "
			"%u/%u/%u/%u check %u compressed %u)\n",
		c->name, c->ops, r.counts[OP_WRITE], r.counts[OP_READ], r.counts[OP_DISCARD],
		r.counts[OP_ZERO], r.counts[OP_FLUSH], r.counts[OP_REOPEN],
		r.counts[OP_SNAP_CREATE], r.counts[OP_SNAP_APPLY], r.counts[OP_SNAP_DELETE],
		r.counts[OP_SNAP_READ], r.counts[OP_CHECK], r.counts[OP_COMPRESS]);
	if (qemu)
		qemu_verify(&r);
	for (unsigned i = 0; i < r.nsnap; i++)
		free(r.snap[i]);
	free(r.model);
	free(r.base);
	free(r.buf);
	free(r.path);
	free(r.base_path);
	tu_rmtree(r.dir);
	free(r.dir);
}

static const struct cfg cfgs[] = {
	{ "v3-64k", 3, 65536, 16, 8u << 20, 0, true, 3000, 1 },
	{ "v3-4k-backing", 3, 4096, 16, 3u << 20, (2u << 20) + 1234, true, 3000, 2 },
	{ "v2-512-backing", 2, 512, 16, 1u << 20, 700u << 10, true, 2500, 3 },
	{ "v3-512-rc64", 3, 512, 64, 2u << 20, 0, true, 2500, 4 },
	{ "v3-1k-rc1-backing", 3, 1024, 1, (1u << 20) + 3072, 1u << 20, false, 2000, 5 },
	{ "v3-2m-backing", 3, 2u << 20, 16, 24u << 20, 20u << 20, true, 400, 6 },
	{ "v3-4k-odd-size", 3, 4096, 8, 5000192, 0, true, 2500, 7 },
	/* 512-byte clusters, 64-bit refcounts: 64 refcounts per block, the table must grow */
	{ "v3-512-rc64-grow", 3, 512, 64, 6u << 20, 0, true, 1200, 8, 96 },
	/* O_DIRECT: unaligned guest requests go through the aligned bounce path */
	{ "v3-64k-direct-backing", 3, 65536, 16, 4u << 20, 3u << 20, true, 1500, 9, 3, IMG_O_DIRECT },
	/* zstd for the compressed writes, with a backing file */
	{ "v3-4k-zstd-backing", 3, 4096, 16, 3u << 20, 2u << 20, true, 1500, 10, 3, 0, "zstd" },
};

/* ---- concurrent I/O: threads on disjoint regions sharing L2 tables ---- */

#define NTHREADS 4
#define TREGION (768u << 10)

struct tctx {
	struct img *im;
	uint8_t *model; /* whole disk; each thread touches only its region */
	unsigned id;
	int failures;
};

static void *thread_main(void *arg)
{
	struct tctx *t = arg;
	uint64_t rng = 0x1234567 + t->id, base = (uint64_t)t->id * TREGION;
	uint8_t *buf = malloc(200000);

	for (int i = 0; i < 600 && buf; i++) {
		uint64_t off = base + tu_rand(&rng) % TREGION, len = 1 + tu_rand(&rng) % 150000;
		if (len > base + TREGION - off)
			len = base + TREGION - off;
		switch (tu_rand(&rng) % 8) {
		case 0: case 1: case 2:
			tu_fill(buf, len, &rng);
			if (img_pwrite(t->im, buf, len, off))
				t->failures++;
			memcpy(t->model + off, buf, len);
			break;
		case 3:
			if (img_write_zeroes(t->im, off, len, true))
				t->failures++;
			memset(t->model + off, 0, len);
			break;
		case 4:
			if (img_flush(t->im))
				t->failures++;
			break;
		default:
			if (img_pread(t->im, buf, len, off) || memcmp(buf, t->model + off, len))
				t->failures++;
			break;
		}
	}
	free(buf);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp(), *path = tu_path(dir, "t.qcow2"), err[256];
	struct qcow2_create_opts o = { .size = NTHREADS * TREGION, .cluster_size = 4096 };
	struct tctx t[NTHREADS];
	pthread_t th[NTHREADS];
	uint8_t *model = calloc(1, NTHREADS * TREGION);
	struct img *im;

	assert_int_equal(qcow2_create(path, &o, err, sizeof(err)), 0);
	assert_int_equal(img_open(&im, path, "qcow2", 0, err, sizeof(err)), 0);
	for (unsigned round = 0; round < 2; round++) { /* fresh clusters, then in-place */
		for (unsigned i = 0; i < NTHREADS; i++) {
			t[i] = (struct tctx){ .im = im, .model = model, .id = i };
			assert_int_equal(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
		}
		for (unsigned i = 0; i < NTHREADS; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(t[i].failures, 0);
		}
	}
	assert_true(tu_compare_image(im, model, NTHREADS * TREGION) == -1);
	struct qcow2_check_result res;
	assert_int_equal(qcow2_check(im, false, &res), 0);
	assert_true(res.corruptions == 0 && res.leaks == 0);
	img_close(im);
	if (tu_have_qemu()) {
		char out[2048];
		int st = tu_qemu_img(out, sizeof(out), "check", path, NULL);
		if (st)
			fprintf(stderr, "%s\n", out);
		assert_int_equal(st, 0);
	}
	tu_rmtree(dir);
	free(dir);
	free(path);
	free(model);
}

int main(void)
{
	struct CMUnitTest t[ARRAY_SIZE(cfgs) + 1];
	if (getenv("VIREO_DEBUG"))
		vlog_set_level(VLOG_DEBUG);
	for (size_t i = 0; i < ARRAY_SIZE(cfgs); i++) {
		struct CMUnitTest u = { cfgs[i].name, run_model, NULL, NULL,
					(void *)(uintptr_t)&cfgs[i] };
		t[i] = u;
	}
	struct CMUnitTest th = cmocka_unit_test(test_threads);
	t[ARRAY_SIZE(cfgs)] = th;
	return cmocka_run_group_tests(t, NULL, NULL);
}
