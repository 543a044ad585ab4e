/* SPDX-License-Identifier: MIT */
/*
 * The asynchronous block backends on real temporary files, each test run once per engine
 * (io_uring, threads, image), plus the core's FLUSH ordering and drain on a scripted
 * engine whose requests finish only when the test says so.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "block/blk_backend.h"
#include "common/evloop.h"

#define DISK_SIZE (4u << 20)
#define MAXDONE 512

struct tb {
	enum blk_engine engine;
	const char *engine_name;
	char path[64];
	struct blk_backend *be;
	int ndone;
	struct blk_req *order[MAXDONE]; /* in delivery order */
	int result[MAXDONE];
	pthread_t thread[MAXDONE];
};

static void on_done(struct blk_req *r, int res)
{
	struct tb *t = r->opaque;
	assert_true(t->ndone < MAXDONE);
	t->order[t->ndone] = r;
	t->result[t->ndone] = res;
	t->thread[t->ndone] = pthread_self();
	t->ndone++;
}

static uint8_t pat(uint64_t off, unsigned seed)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511) + seed);
}

/* A file of size bytes in dir, filled with pat(.., 0). */
static void make_file(struct tb *t, const char *dir, uint64_t size)
{
	snprintf(t->path, sizeof(t->path), "%s/vireo-blk-XXXXXX", dir);
	int fd = mkstemp(t->path);
	assert_true(fd >= 0);
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = pat(i, 0);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	free(buf);
	close(fd);
}

static int open_disk(struct tb *t, bool ro, enum blk_cache cache, struct evloop *loop,
		     struct blk_backend **out)
{
	struct blk_config cfg;
	char err[256] = "";
	blk_config_defaults(&cfg);
	snprintf(cfg.path, sizeof(cfg.path), "%s", t->path);
	cfg.readonly = ro;
	cfg.cache = cache;
	cfg.engine = t->engine;
	int r = blk_open(out, &cfg, loop, err, sizeof(err));
	if (r)
		print_message("blk_open: %s\n", err);
	return r;
}

static void disk_up(struct tb *t, bool ro, enum blk_cache cache)
{
	assert_int_equal(open_disk(t, ro, cache, NULL, &t->be), 0);
	struct blk_info info;
	blk_get_info(t->be, &info);
	assert_string_equal(info.engine, t->engine_name);
}

static int setup(void **state)
{
	struct tb *t = *state;
	t->ndone = 0;
	make_file(t, "/tmp", DISK_SIZE);
	return 0;
}

static int teardown(void **state)
{
	struct tb *t = *state;
	blk_close(t->be);
	t->be = NULL;
	unlink(t->path);
	return 0;
}

/* Poll until n completions arrived (5 s at most). */
static void wait_done(struct tb *t, int n)
{
	for (int i = 0; i < 500 && t->ndone < n; i++)
		assert_true(blk_poll(t->be, 10) >= 0);
	assert_int_equal(t->ndone, n);
}

static void rw(struct tb *t, struct blk_req *r, enum blk_op op, uint64_t off, struct iovec *iov,
	       int n)
{
	*r = (struct blk_req){.op = op, .offset = off, .iov = iov, .iovcnt = n, .done = on_done,
			      .opaque = t};
	blk_submit(t->be, r);
}

static void test_read_write(void **state)
{
	struct tb *t = *state;
	disk_up(t, false, BLK_CACHE_WRITEBACK);

	/* A read scattered over three buffers of odd sizes. */
	static uint8_t a[1000], b[24], c[4096];
	struct iovec iov[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
	struct blk_req r[4];
	uint64_t off = 3 * 512 * 1024 + 7 * 512;
	rw(t, &r[0], BLK_OP_READ, off, iov, 3);
	blk_kick(t->be);
	wait_done(t, 1);
	assert_int_equal(t->result[0], 0);
	for (unsigned i = 0; i < sizeof(a); i++)
		assert_int_equal(a[i], pat(off + i, 0));
	for (unsigned i = 0; i < sizeof(c); i++)
		assert_int_equal(c[i], pat(off + sizeof(a) + sizeof(b) + i, 0));

	/* Two writes in one batch, gathered from several buffers, land on the file. */
	static uint8_t w[3][2048];
	for (unsigned k = 0; k < 3; k++)
		for (unsigned i = 0; i < sizeof(w[k]); i++)
			w[k][i] = pat(k * 2048 + i, 77);
	struct iovec wv[3] = {{w[0], 2048}, {w[1], 2048}, {w[2], 2048}};
	rw(t, &r[1], BLK_OP_WRITE, 0, wv, 2);
	rw(t, &r[2], BLK_OP_WRITE, DISK_SIZE - 2048, &wv[2], 1);
	blk_kick(t->be);
	wait_done(t, 3);
	assert_int_equal(t->result[1] | t->result[2], 0);
	int fd = open(t->path, O_RDONLY);
	uint8_t chk[4096];
	assert_int_equal(pread(fd, chk, 4096, 0), 4096);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(chk[i], pat(i, 77));
	assert_int_equal(pread(fd, chk, 2048, DISK_SIZE - 2048), 2048);
	assert_memory_equal(chk, w[2], 2048);
	assert_int_equal(pread(fd, chk, 512, 4096), 512); /* untouched after the write */
	assert_int_equal(chk[0], pat(4096, 0));
	close(fd);

	/* Beyond the end: rejected, delivered as a completion. */
	rw(t, &r[3], BLK_OP_READ, DISK_SIZE - 512, iov, 1);
	blk_kick(t->be);
	wait_done(t, 4);
	assert_int_equal(t->result[3], -EINVAL);
	assert_int_equal(blk_outstanding(t->be), 0);
}

static void test_nothing_starts_before_kick(void **state)
{
	struct tb *t = *state;
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	static uint8_t buf[512];
	memset(buf, 0xee, sizeof(buf));
	struct iovec v = {buf, sizeof(buf)};
	struct blk_req r;
	rw(t, &r, BLK_OP_WRITE, 0, &v, 1);
	assert_int_equal(blk_poll(t->be, 100), 0);
	assert_int_equal(t->ndone, 0);
	int fd = open(t->path, O_RDONLY);
	uint8_t chk;
	assert_int_equal(pread(fd, &chk, 1, 0), 1);
	assert_int_equal(chk, pat(0, 0));
	blk_kick(t->be);
	wait_done(t, 1);
	assert_int_equal(pread(fd, &chk, 1, 0), 1);
	assert_int_equal(chk, 0xee);
	close(fd);
}

static void test_flush_after_writes(void **state)
{
	struct tb *t = *state;
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	enum { N = 48 };
	static uint8_t buf[N][16384];
	struct iovec v[N];
	struct blk_req r[N + 1];
	for (int i = 0; i < N; i++) {
		memset(buf[i], i + 1, sizeof(buf[i]));
		v[i] = (struct iovec){buf[i], sizeof(buf[i])};
		rw(t, &r[i], BLK_OP_WRITE, (uint64_t)i * 65536, &v[i], 1);
	}
	r[N] = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
	blk_submit(t->be, &r[N]);
	blk_kick(t->be);
	wait_done(t, N + 1);
	assert_ptr_equal(t->order[N], &r[N]); /* the flush is the last to complete */
	for (int i = 0; i <= N; i++)
		assert_int_equal(t->result[i], 0);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void zeroes_case(struct tb *t, enum blk_op op, unsigned flags, uint64_t off, uint64_t len)
{
	struct blk_req r = {.op = op, .flags = flags, .offset = off, .len = len, .done = on_done,
			    .opaque = t};
	int n = t->ndone;
	blk_submit(t->be, &r);
	blk_kick(t->be);
	wait_done(t, n + 1);
	assert_int_equal(t->result[n], 0);
	int fd = open(t->path, O_RDONLY);
	uint8_t *chk = malloc(len + 1024);
	assert_int_equal(pread(fd, chk, len + 1024, (off_t)off - 512), (ssize_t)(len + 1024));
	if (chk[511] != pat(off - 1, 0))
		fail_msg("op %d flags %u [%llu, +%llu): byte before changed", op, flags,
			 (unsigned long long)off, (unsigned long long)len);
	assert_true(all_bytes(chk + 512, len, 0));	  /* the range reads zeroes */
	assert_int_equal(chk[512 + len], pat(off + len, 0)); /* the byte after is intact */
	free(chk);
	close(fd);
	struct stat st;
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_size, DISK_SIZE); /* KEEP_SIZE */
}

static void run_zeroes(struct tb *t)
{
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	zeroes_case(t, BLK_OP_WRITE_ZEROES, 0, 8192, 3 * 4096);
	zeroes_case(t, BLK_OP_WRITE_ZEROES, BLK_REQ_UNMAP, 65536, 65536);
	zeroes_case(t, BLK_OP_WRITE_ZEROES, BLK_REQ_FUA, 1024 * 1024 + 512, 1536);
	/* Bigger than the zero buffer, so the fallback needs several writes. */
	zeroes_case(t, BLK_OP_WRITE_ZEROES, 0, 1024 * 1024 + 4096, 2 * 1024 * 1024 + 512);
	/* Punching whole file-system blocks reads back zeroes on ext4, xfs, btrfs, tmpfs. */
	zeroes_case(t, BLK_OP_DISCARD, 0, 3584 * 1024, 65536);
}

static void test_zeroes_and_discard(void **state)
{
	run_zeroes(*state);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: the engines fall back to writing zeroes. */
static void test_zeroes_on_tmpfs(void **state)
{
	struct tb *t = *state;
	struct stat st;
	if (stat("/dev/shm", &st) || !S_ISDIR(st.st_mode))
		skip();
	unlink(t->path);
	make_file(t, "/dev/shm", DISK_SIZE);
	run_zeroes(t);
}

static void test_readonly(void **state)
{
	struct tb *t = *state;
	disk_up(t, true, BLK_CACHE_WRITEBACK);
	struct blk_info info;
	blk_get_info(t->be, &info);
	assert_true(info.readonly);
	static uint8_t buf[512];
	memset(buf, 0x55, sizeof(buf));
	struct iovec v = {buf, sizeof(buf)};
	struct blk_req r[4];
	rw(t, &r[0], BLK_OP_WRITE, 0, &v, 1);
	r[1] = (struct blk_req){.op = BLK_OP_DISCARD, .offset = 0, .len = 4096, .done = on_done,
				.opaque = t};
	blk_submit(t->be, &r[1]);
	r[2] = (struct blk_req){.op = BLK_OP_WRITE_ZEROES, .offset = 0, .len = 4096,
				.done = on_done, .opaque = t};
	blk_submit(t->be, &r[2]);
	rw(t, &r[3], BLK_OP_READ, 0, &v, 1);
	blk_kick(t->be);
	wait_done(t, 4);
	for (int i = 0; i < 4; i++) {
		int want = t->order[i] == &r[3] ? 0 : -EROFS;
		assert_int_equal(t->result[i], want);
	}
	assert_int_equal(buf[0], pat(0, 0));
	int fd = open(t->path, O_RDONLY);
	uint8_t chk[4096];
	assert_int_equal(pread(fd, chk, sizeof(chk), 0), (ssize_t)sizeof(chk));
	for (unsigned i = 0; i < sizeof(chk); i++)
		assert_int_equal(chk[i], pat(i, 0));
	close(fd);

	/* Readers share; a writer is refused while a reader holds the disk. */
	struct blk_backend *other;
	assert_int_equal(open_disk(t, true, BLK_CACHE_WRITEBACK, NULL, &other), 0);
	blk_close(other);
	struct blk_config cfg;
	char err[256];
	blk_config_defaults(&cfg);
	snprintf(cfg.path, sizeof(cfg.path), "%s", t->path);
	cfg.engine = t->engine;
	assert_int_equal(blk_open(&other, &cfg, NULL, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "is in use by another VM"));
}

static void test_lock_and_open_errors(void **state)
{
	struct tb *t = *state;
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	struct blk_config cfg;
	struct blk_backend *other = NULL;
	char err[256];
	blk_config_defaults(&cfg);
	snprintf(cfg.path, sizeof(cfg.path), "%s", t->path);
	cfg.engine = t->engine;
	assert_int_equal(blk_open(&other, &cfg, NULL, err, sizeof(err)), -EBUSY);
	assert_null(other);
	assert_non_null(strstr(err, "is in use by another VM"));
	cfg.readonly = true;
	assert_int_equal(blk_open(&other, &cfg, NULL, err, sizeof(err)), -EBUSY);
	/* Closing releases the lock. */
	blk_close(t->be);
	t->be = NULL;
	assert_int_equal(blk_open(&other, &cfg, NULL, err, sizeof(err)), 0);
	blk_close(other);

	snprintf(cfg.path, sizeof(cfg.path), "/nonexistent/disk.img");
	assert_true(blk_open(&other, &cfg, NULL, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/disk.img"));
	if (t->engine != BLK_ENGINE_IMAGE) {
		snprintf(cfg.path, sizeof(cfg.path), "/dev/null");
		assert_int_equal(blk_open(&other, &cfg, NULL, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "not a regular file or block device"));
	}
}

static void test_injected_error(void **state)
{
	struct tb *t = *state;
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	static uint8_t buf[512];
	struct iovec v = {buf, sizeof(buf)};
	struct blk_req r[2];
	memset(buf, 0x11, sizeof(buf));
	blk_inject_error(t->be, BLK_OP_WRITE, ENOSPC, 1);
	rw(t, &r[0], BLK_OP_WRITE, 0, &v, 1);
	blk_kick(t->be);
	wait_done(t, 1);
	assert_int_equal(t->result[0], -ENOSPC);
	int fd = open(t->path, O_RDONLY);
	uint8_t chk;
	assert_int_equal(pread(fd, &chk, 1, 0), 1);
	assert_int_equal(chk, pat(0, 0)); /* the failed write never reached the file */
	rw(t, &r[1], BLK_OP_WRITE, 0, &v, 1);
	blk_kick(t->be);
	wait_done(t, 2);
	assert_int_equal(t->result[1], 0);
	assert_int_equal(pread(fd, &chk, 1, 0), 1);
	assert_int_equal(chk, 0x11);
	close(fd);
}

/* A real ENOSPC: a 256 KiB tmpfs in a private mount namespace (skipped if not allowed). */
static void test_real_enospc(void **state)
{
	struct tb *t = *state;
	char dir[] = "/tmp/vireo-enospc-XXXXXX";
	assert_non_null(mkdtemp(dir));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The tmpfs exists only in the child's private mount namespace. */
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=256k") < 0)
			_exit(77);
		snprintf(t->path, sizeof(t->path), "%s/disk", dir);
		int fd = open(t->path, O_CREAT | O_RDWR, 0600);
		if (fd < 0 || ftruncate(fd, 4 << 20) < 0)
			_exit(78);
		close(fd);
		t->ndone = 0;
		if (open_disk(t, false, BLK_CACHE_WRITEBACK, NULL, &t->be))
			_exit(79);
		static uint8_t big[1 << 20];
		memset(big, 0xab, sizeof(big));
		struct iovec v = {big, sizeof(big)};
		struct blk_req r;
		rw(t, &r, BLK_OP_WRITE, 0, &v, 1);
		blk_kick(t->be);
		for (int i = 0; i < 500 && !t->ndone; i++)
			if (blk_poll(t->be, 10) < 0)
			break;
		int res = t->ndone ? t->result[0] : 1;
		blk_close(t->be);
		_exit(res == -ENOSPC ? 0 : 80);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	rmdir(dir);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_drain_cancels_unstarted(void **state)
{
	struct tb *t = *state;
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	static uint8_t buf[8][4096];
	struct iovec v[8];
	struct blk_req r[9];
	for (int i = 0; i < 8; i++) {
		memset(buf[i], 0x99, sizeof(buf[i]));
		v[i] = (struct iovec){buf[i], sizeof(buf[i])};
		rw(t, &r[i], i & 1 ? BLK_OP_READ : BLK_OP_WRITE, (uint64_t)i * 4096, &v[i], 1);
	}
	r[8] = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
	blk_submit(t->be, &r[8]);
	blk_drain(t->be); /* never kicked: nothing started, all cancelled */
	assert_int_equal(t->ndone, 0); /* done() is never called from inside drain */
	assert_int_equal(blk_outstanding(t->be), 9);
	wait_done(t, 9);
	for (int i = 0; i < 9; i++)
		assert_int_equal(t->result[i], -ECANCELED);
	for (int i = 1; i < 8; i += 2)
		assert_true(all_bytes(buf[i], 4096, 0x99)); /* reads never touched their buffer */
	int fd = open(t->path, O_RDONLY);
	uint8_t chk;
	assert_int_equal(pread(fd, &chk, 1, 0), 1);
	assert_int_equal(chk, pat(0, 0));
	close(fd);

	/* Started requests are waited for: afterwards every one has finished. */
	t->ndone = 0;
	for (int i = 0; i < 8; i++)
		rw(t, &r[i], BLK_OP_READ, (uint64_t)i * 65536, &v[i], 1);
	blk_kick(t->be);
	blk_drain(t->be);
	blk_quiesce(t->be);
	assert_int_equal(t->ndone, 8);
	assert_int_equal(blk_outstanding(t->be), 0);
	for (int i = 0; i < 8; i++)
		assert_true(t->result[i] == 0 || t->result[i] == -ECANCELED);
}

static void test_file_shrank(void **state)
{
	struct tb *t = *state;
	if (t->engine == BLK_ENGINE_IMAGE)
		skip(); /* the image layer has its own rules past the end of the file */
	disk_up(t, false, BLK_CACHE_WRITEBACK);
	assert_int_equal(truncate(t->path, DISK_SIZE / 2), 0);
	static uint8_t buf[8192];
	memset(buf, 0x77, sizeof(buf));
	struct iovec v = {buf, sizeof(buf)};
	struct blk_req r;
	rw(t, &r, BLK_OP_READ, DISK_SIZE / 2 - 4096, &v, 1);
	blk_kick(t->be);
	wait_done(t, 1);
	assert_int_equal(t->result[0], 0);
	assert_int_equal(buf[0], pat(DISK_SIZE / 2 - 4096, 0));
	assert_true(all_bytes(buf + 4096, 4096, 0)); /* past the end: zeroes */
}

static void test_cache_modes(void **state)
{
	struct tb *t = *state;
	static const enum blk_cache modes[] = {BLK_CACHE_NONE, BLK_CACHE_WRITETHROUGH,
					       BLK_CACHE_UNSAFE};
	for (unsigned m = 0; m < ARRAY_SIZE(modes); m++) {
		t->ndone = 0;
		int e = open_disk(t, false, modes[m], NULL, &t->be);
		if (e == -EINVAL && modes[m] == BLK_CACHE_NONE)
			continue; /* no O_DIRECT on this file system */
		assert_int_equal(e, 0);
		uint8_t *buf = aligned_alloc(4096, 8192);
		memset(buf, 0x30 + (int)m, 8192);
		struct iovec v = {buf, 8192};
		struct blk_req r[3];
		rw(t, &r[0], BLK_OP_WRITE, 8192, &v, 1);
		r[1] = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
		blk_submit(t->be, &r[1]);
		blk_kick(t->be);
		wait_done(t, 2);
		assert_int_equal(t->result[0] | t->result[1], 0);
		memset(buf, 0, 8192);
		rw(t, &r[2], BLK_OP_READ, 8192, &v, 1);
		blk_kick(t->be);
		wait_done(t, 3);
		assert_int_equal(t->result[2], 0);
		assert_true(all_bytes(buf, 8192, (uint8_t)(0x30 + m)));
		free(buf);
		blk_close(t->be);
		t->be = NULL;
	}
}

/* With an evloop, done() runs on the loop's thread, never on the submitter's. */
static void test_completion_on_loop_thread(void **state)
{
	struct tb *t = *state;
	struct evloop loop;
	assert_int_equal(evloop_init(&loop), 0);
	assert_int_equal(open_disk(t, false, BLK_CACHE_WRITEBACK, &loop, &t->be), 0);
	assert_int_equal(evloop_start(&loop), 0);
	static uint8_t buf[16][4096];
	struct iovec v[16];
	struct blk_req r[16];
	for (int i = 0; i < 16; i++) {
		v[i] = (struct iovec){buf[i], 4096};
		rw(t, &r[i], BLK_OP_READ, (uint64_t)i * 4096, &v[i], 1);
	}
	blk_kick(t->be);
	for (int i = 0; i < 500 && blk_outstanding(t->be); i++)
		usleep(10000);
	assert_int_equal(blk_outstanding(t->be), 0);
	evloop_stop(&loop);
	assert_int_equal(t->ndone, 16);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(t->result[i], 0);
		assert_false(pthread_equal(t->thread[i], pthread_self()));
	}
	assert_int_equal(buf[5][0], pat(5 * 4096, 0));

	/* A disk kept across a guest reboot moves to the machine's new loop. */
	struct evloop loop2;
	assert_int_equal(evloop_init(&loop2), 0);
	assert_int_equal(blk_attach_loop(t->be, NULL), 0);
	evloop_fini(&loop);
	assert_int_equal(blk_attach_loop(t->be, &loop2), 0);
	assert_int_equal(evloop_start(&loop2), 0);
	t->ndone = 0;
	rw(t, &r[0], BLK_OP_READ, 7 * 4096, &v[0], 1);
	blk_kick(t->be);
	for (int i = 0; i < 500 && blk_outstanding(t->be); i++)
		usleep(10000);
	evloop_stop(&loop2);
	assert_int_equal(t->ndone, 1);
	assert_false(pthread_equal(t->thread[0], pthread_self()));
	assert_int_equal(buf[0][0], pat(7 * 4096, 0));
	blk_close(t->be);
	t->be = NULL;
	evloop_fini(&loop2);
}

/* --- the core on a scripted engine --- */

struct script {
	struct blk_req *sub[64];
	int nsub;
	int kicks, drains;
};

static void sc_submit(struct blk_backend *be, struct blk_req *r)
{
	struct script *s = be->priv;
	s->sub[s->nsub++] = r;
}
static void sc_kick(struct blk_backend *be)
{
	((struct script *)be->priv)->kicks++;
}
static void sc_drain(struct blk_backend *be)
{
	struct script *s = be->priv;
	s->drains++;
	for (int i = 0; i < s->nsub; i++)
		if (s->sub[i])
			blk_core_finish(be, s->sub[i], 0);
	s->nsub = 0;
}
static void sc_close(struct blk_backend *be)
{
	(void)be;
}
static const struct blk_backend_ops script_ops = {
	.name = "script", .submit = sc_submit, .kick = sc_kick, .drain = sc_drain,
	.close = sc_close};

static void sc_finish(struct blk_backend *be, struct script *s, int i, int res)
{
	pthread_mutex_lock(&be->lock);
	blk_core_finish(be, s->sub[i], res);
	s->sub[i] = NULL;
	pthread_mutex_unlock(&be->lock);
}

static void test_flush_waits_for_older_requests(void **state)
{
	struct tb *t = *state;
	struct script s = {0};
	struct blk_info info = {.size = 1 << 20, .logical_block = 512, .physical_block = 512};
	static uint8_t buf[512];
	struct iovec v = {buf, 512};
	struct blk_req w1, w2, f1, w3, f2;
	assert_int_equal(blk_backend_new(&t->be, &script_ops, &s, &info, NULL), 0);

	rw(t, &w1, BLK_OP_WRITE, 0, &v, 1);
	rw(t, &w2, BLK_OP_WRITE, 512, &v, 1);
	f1 = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
	blk_submit(t->be, &f1);
	rw(t, &w3, BLK_OP_WRITE, 1024, &v, 1);
	blk_kick(t->be);
	/* The engine saw w1, w2, w3 but not the flush. */
	assert_int_equal(s.nsub, 3);
	assert_ptr_equal(s.sub[2], &w3);
	sc_finish(t->be, &s, 1, 0); /* w2 */
	assert_int_equal(s.nsub, 3);
	sc_finish(t->be, &s, 2, 0); /* w3: younger than the flush, does not release it */
	assert_int_equal(s.nsub, 3);
	sc_finish(t->be, &s, 0, 0); /* w1: now the flush goes */
	assert_int_equal(s.nsub, 4);
	assert_ptr_equal(s.sub[3], &f1);
	/* A flush with nothing older in flight goes to the engine with the next kick. */
	f2 = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
	blk_submit(t->be, &f2);
	assert_int_equal(s.nsub, 4);
	blk_kick(t->be);
	assert_int_equal(s.nsub, 5);
	sc_finish(t->be, &s, 3, -EIO);
	sc_finish(t->be, &s, 4, 0);
	wait_done(t, 5);
	assert_ptr_equal(t->order[3], &f1);
	assert_int_equal(t->result[3], -EIO);

	/* A flush released by a completion before anyone kicked it waits for the kick. */
	struct blk_req w4, f3;
	rw(t, &w4, BLK_OP_WRITE, 0, &v, 1);
	blk_kick(t->be);
	f3 = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
	blk_submit(t->be, &f3);
	sc_finish(t->be, &s, 5, 0);
	assert_int_equal(s.nsub, 6);
	blk_kick(t->be);
	assert_int_equal(s.nsub, 7);
	assert_ptr_equal(s.sub[6], &f3);
	sc_finish(t->be, &s, 6, 0);
	wait_done(t, 7);
	assert_int_equal(blk_outstanding(t->be), 0);
	blk_close(t->be); /* s lives on this stack */
	t->be = NULL;
}

static void test_drain_cancels_parked_flush(void **state)
{
	struct tb *t = *state;
	struct script s = {0};
	struct blk_info info = {.size = 1 << 20, .logical_block = 512, .physical_block = 512};
	static uint8_t buf[512];
	struct iovec v = {buf, 512};
	struct blk_req w, f;
	assert_int_equal(blk_backend_new(&t->be, &script_ops, &s, &info, NULL), 0);
	rw(t, &w, BLK_OP_WRITE, 0, &v, 1);
	blk_kick(t->be);
	f = (struct blk_req){.op = BLK_OP_FLUSH, .done = on_done, .opaque = t};
	blk_submit(t->be, &f);
	blk_kick(t->be);
	assert_int_equal(s.nsub, 1); /* the flush is parked behind the write */
	blk_drain(t->be);
	assert_int_equal(s.drains, 1);
	assert_int_equal(s.nsub, 0); /* the engine finished the write; the flush never went */
	wait_done(t, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(t->result[i], t->order[i] == &f ? -ECANCELED : 0);
	blk_close(t->be);
	t->be = NULL;
}

static int group_setup(void **state, enum blk_engine e, const char *name)
{
	struct tb *t = calloc(1, sizeof(*t));
	t->engine = e;
	t->engine_name = name;
	*state = t;
	return 0;
}
static int uring_group(void **state)
{
	return group_setup(state, BLK_ENGINE_URING, "io_uring");
}
static int threads_group(void **state)
{
	return group_setup(state, BLK_ENGINE_THREADS, "threads");
}
static int image_group(void **state)
{
	return group_setup(state, BLK_ENGINE_IMAGE, "image");
}
static int group_teardown(void **state)
{
	free(*state);
	return 0;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest engine_tests[] = {
		T(test_read_write),
		T(test_nothing_starts_before_kick),
		T(test_flush_after_writes),
		T(test_zeroes_and_discard),
		T(test_zeroes_on_tmpfs),
		T(test_readonly),
		T(test_lock_and_open_errors),
		T(test_injected_error),
		T(test_real_enospc),
		T(test_drain_cancels_unstarted),
		T(test_file_shrank),
		T(test_cache_modes),
		T(test_completion_on_loop_thread),
	};
	const struct CMUnitTest core_tests[] = {
		T(test_flush_waits_for_older_requests),
		T(test_drain_cancels_parked_flush),
	};
	int fails = 0;
	fails += cmocka_run_group_tests_name("io_uring", engine_tests, uring_group, group_teardown);
	fails += cmocka_run_group_tests_name("threads", engine_tests, threads_group, group_teardown);
	fails += cmocka_run_group_tests_name("image", engine_tests, image_group, group_teardown);
	fails += cmocka_run_group_tests_name("core", core_tests, threads_group, group_teardown);
	return fails;
}
