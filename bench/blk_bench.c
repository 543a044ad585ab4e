/* SPDX-License-Identifier: MIT */
/*
 * blk-bench: drive Vireo's block layer (src/block/block.h) in-process, the way virtio-blk
 * does, with no guest: keep DEPTH requests of BS bytes in flight for SECONDS and report
 * what was done. Run by bench/block.sh next to fio on the same file.
 *
 *   blk-bench run --path F [--format raw|qcow2] [--engine io_uring|threads]
 *                 [--cache none|writeback] --rw randread|randwrite|read|write --bs BYTES
 *                 --qd N --time SECONDS [--loop 0|1] [--kick-each 0|1] [--per-io 0|1]
 *   blk-bench create-qcow2 --path F --size BYTES   (64 KiB clusters, data fully preallocated)
 *   blk-bench fill --path F [--format ...] [--cache ...]   (write every byte once, 1 MiB x 32)
 *
 * `run` prints one line of key=value pairs: ios, bytes, seconds, iops, mibs, cpu_us (user+sys
 * of the whole process over the measured interval, every backend thread included, from
 * getrusage(RUSAGE_SELF)), cpu_us_per_io, engine, errors. Completions are taken with
 * blk_poll() on this thread (no evloop); by default ("batched") every slot freed by one
 * wake-up is resubmitted as one batch and one blk_kick(), as a device does per queue
 * notification: with io_uring, one io_uring_enter submits the batch and waits for the next
 * completion. With --loop 1 the disk is opened on an evloop instead and this thread runs
 * it (evloop_run_once), the way the VMM's I/O thread sees completions: through epoll,
 * between other events.
 *
 * --kick-each 1 kicks after every request instead of once per batch. With --loop the
 * io_uring engine then submits each request in its own io_uring_enter; without a loop it
 * changes nothing the host sees (kicked requests wait for the next blk_poll, which submits
 * them together).
 *
 * --per-io 1 is fio's default loop (iodepth_batch_submit=1, iodepth_batch_complete_min=1):
 * every request goes to the host on its own, as soon as its slot is free. Each freed slot
 * is submitted and kicked alone, then pushed to the host at once: without a loop by
 * blk_poll(be, 0) (one io_uring_enter that submits it and delivers whatever has completed
 * meanwhile), with --loop by the kick itself. The bench waits (blk_poll / evloop, up to
 * 100 ms) only when no slot is free, i.e. all QD requests are in flight.
 */
#include "block/block.h"
#include "block/qcow2.h"
#include "common/evloop.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_QD_MAX 256u

struct bench_slot {
	struct blk_req req;
	struct iovec iov;
	struct bench *b;
	struct bench_slot *free_next;
};

struct bench {
	struct blk_backend *be;
	struct evloop loop;
	bool use_loop;
	bool kick_each;
	bool per_io;
	unsigned qd;
	enum blk_op op;
	bool random;
	uint64_t bs, disk_blocks, next_block, rng;
	uint64_t ios, bytes, errors;
	int first_err;
	struct bench_slot *free_list;
	struct bench_slot slots[BENCH_QD_MAX];
};

struct bench_args {
	const char *cmd, *path, *format, *engine, *cache, *rw;
	uint64_t bs, size;
	unsigned qd;
	double seconds;
	bool loop;
	bool kick_each;
	bool per_io;
};

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench_cpu_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static uint64_t bench_rand(struct bench *b)
{
	/* xorshift64*: uniform enough for offsets, no libc state. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545F4914F6CDD1Dull;
}

static void bench_done(struct blk_req *req, int result)
{
	struct bench_slot *s = container_of(req, struct bench_slot, req);
	struct bench *b = s->b;

	if (result < 0) {
		if (!b->errors++)
			b->first_err = result;
	} else {
		b->ios++;
		b->bytes += b->bs;
	}
	s->free_next = b->free_list;
	b->free_list = s;
}

/* Take the first free slot and blk_submit() it (no kick). */
static void bench_submit_one(struct bench *b)
{
	struct bench_slot *s = b->free_list;
	uint64_t blk;

	b->free_list = s->free_next;
	if (b->random) {
		blk = bench_rand(b) % b->disk_blocks;
	} else {
		blk = b->next_block++;
		if (b->next_block >= b->disk_blocks)
			b->next_block = 0;
	}
	s->iov.iov_len = b->bs;
	s->req.op = b->op;
	s->req.flags = 0;
	s->req.offset = blk * b->bs;
	s->req.iov = &s->iov;
	s->req.iovcnt = 1;
	s->req.done = bench_done;
	blk_submit(b->be, &s->req);
}

/*
 * Batched (default): submit every free slot, kick once. --per-io: submit, kick and push
 * each request to the host on its own (blk_poll(be, 0) without a loop, which may free
 * slots again: those go out too, up to QD requests per call so the caller still sees
 * its deadline). Returns 0 or the -errno of blk_poll.
 */
static int bench_refill(struct bench *b)
{
	unsigned n = 0;

	if (b->per_io) {
		while (b->free_list && n < b->qd) {
			bench_submit_one(b);
			blk_kick(b->be);
			n++;
			if (!b->use_loop) {
				int r = blk_poll(b->be, 0);
				if (r < 0)
					return r;
			}
		}
		return 0;
	}
	while (b->free_list) {
		bench_submit_one(b);
		if (b->kick_each)
			blk_kick(b->be);
		n++;
	}
	if (n && !b->kick_each)
		blk_kick(b->be);
	return 0;
}

static void bench_teardown(struct bench *b, unsigned qd)
{
	blk_close(b->be);
	if (b->use_loop)
		evloop_fini(&b->loop);
	for (unsigned i = 0; i < qd; i++)
		free(b->slots[i].iov.iov_base);
}

static int bench_setup(struct bench *b, const struct bench_args *a, enum blk_op op, bool random)
{
	struct blk_config cfg;
	struct blk_info info;
	char err[512];
	int r;

	blk_config_defaults(&cfg);
	if (strlen(a->path) >= sizeof(cfg.path) || strlen(a->format) >= sizeof(cfg.format))
		return -ENAMETOOLONG;
	strcpy(cfg.path, a->path);
	strcpy(cfg.format, a->format);
	cfg.cache = strcmp(a->cache, "none") == 0 ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK;
	cfg.engine = strcmp(a->engine, "threads") == 0	 ? BLK_ENGINE_THREADS
		     : strcmp(a->engine, "io_uring") == 0 ? BLK_ENGINE_URING
							   : BLK_ENGINE_AUTO;
	b->use_loop = a->loop;
	b->kick_each = a->kick_each;
	b->per_io = a->per_io;
	b->qd = a->qd;
	if (b->use_loop && evloop_init(&b->loop) < 0) {
		fprintf(stderr, "blk-bench: evloop_init failed\n");
		return -ENOMEM;
	}
	r = blk_open(&b->be, &cfg, b->use_loop ? &b->loop : NULL, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "blk-bench: %s\n", err);
		if (b->use_loop)
			evloop_fini(&b->loop);
		return r;
	}
	blk_get_info(b->be, &info);
	b->op = op;
	b->random = random;
	b->bs = a->bs;
	b->disk_blocks = info.size / a->bs;
	b->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	if (b->disk_blocks == 0 || a->qd == 0 || a->qd > BENCH_QD_MAX) {
		fprintf(stderr, "blk-bench: bad size/bs/qd\n");
		bench_teardown(b, 0);
		return -EINVAL;
	}
	for (unsigned i = 0; i < a->qd; i++) {
		struct bench_slot *s = &b->slots[i];
		if (posix_memalign(&s->iov.iov_base, 4096, a->bs) != 0) {
			bench_teardown(b, i);
			return -ENOMEM;
		}
		/* Non-zero, non-repeating payload so nothing can shortcut a write of zeroes. */
		for (uint64_t k = 0; k < a->bs / 8; k++)
			((uint64_t *)s->iov.iov_base)[k] = bench_rand(b) | 1;
		s->b = b;
		s->free_next = b->free_list;
		b->free_list = s;
	}
	printf("engine=%s%s%s ", info.engine, b->use_loop ? " loop=1" : "",
	       b->per_io ? " per_io=1" : "");
	return 0;
}

/* Take completions: from the evloop (--loop 1) or with blk_poll(). */
static int bench_wait(struct bench *b)
{
	return b->use_loop ? evloop_run_once(&b->loop, 100) : blk_poll(b->be, 100);
}

static int bench_run(const struct bench_args *a)
{
	static struct bench b;
	enum blk_op op = (strcmp(a->rw, "randwrite") == 0 || strcmp(a->rw, "write") == 0)
				 ? BLK_OP_WRITE
				 : BLK_OP_READ;
	bool random = strncmp(a->rw, "rand", 4) == 0;
	double t0, t1, c0, c1, deadline;
	int r = bench_setup(&b, a, op, random);

	if (r < 0)
		return r;
	c0 = bench_cpu_us();
	t0 = bench_now();
	deadline = t0 + a->seconds;
	r = bench_refill(&b);
	while (r >= 0 && bench_now() < deadline && !b.errors) {
		/* Wait only with every slot in flight (per-I/O may have freed some already). */
		if (!b.free_list) {
			r = bench_wait(&b);
			if (r < 0)
				break;
		}
		r = bench_refill(&b);
	}
	/* Count what was in flight at the deadline too: wait for it inside the interval. */
	while (blk_outstanding(b.be) && r >= 0)
		r = bench_wait(&b);
	t1 = bench_now();
	c1 = bench_cpu_us();
	bench_teardown(&b, a->qd);
	if (r < 0) {
		fprintf(stderr, "blk-bench: poll: %s\n", strerror(-r));
		return r;
	}
	if (b.errors)
		fprintf(stderr, "blk-bench: %llu errors, first %s\n", (unsigned long long)b.errors,
			strerror(-b.first_err));
	double secs = t1 - t0;
	printf("ios=%llu bytes=%llu seconds=%.3f iops=%.0f mibs=%.1f cpu_us=%.0f cpu_us_per_io=%.2f "
	       "errors=%llu\n",
	       (unsigned long long)b.ios, (unsigned long long)b.bytes, secs, (double)b.ios / secs,
	       (double)b.bytes / secs / 1048576.0, c1 - c0, b.ios ? (c1 - c0) / (double)b.ios : 0,
	       (unsigned long long)b.errors);
	return b.errors ? -EIO : 0;
}

static int bench_fill(const struct bench_args *a)
{
	static struct bench b;
	struct bench_args fa = *a;
	int r;

	fa.bs = 1u << 20;
	fa.qd = 32;
	r = bench_setup(&b, &fa, BLK_OP_WRITE, false);
	if (r < 0)
		return r;
	uint64_t total = b.disk_blocks;
	/* Hand out exactly disk_blocks sequential writes. */
	while (b.ios + b.errors < total) {
		while (b.free_list && b.next_block < total) {
			struct bench_slot *s = b.free_list;
			b.free_list = s->free_next;
			s->iov.iov_len = b.bs;
			s->req.op = BLK_OP_WRITE;
			s->req.flags = 0;
			s->req.offset = b.next_block++ * b.bs;
			s->req.iov = &s->iov;
			s->req.iovcnt = 1;
			s->req.done = bench_done;
			blk_submit(b.be, &s->req);
		}
		blk_kick(b.be);
		r = blk_poll(b.be, 100);
		if (r < 0)
			break;
	}
	while (blk_outstanding(b.be))
		if (blk_poll(b.be, 100) < 0)
			break;
	bench_teardown(&b, fa.qd);
	printf("filled=%llu MiB errors=%llu\n", (unsigned long long)b.ios,
	       (unsigned long long)b.errors);
	return r < 0 ? r : b.errors ? -EIO : 0;
}

static int bench_create_qcow2(const struct bench_args *a)
{
	struct qcow2_create_opts o = {.size = a->size, .prealloc = QCOW2_PREALLOC_FULL};
	char err[512];
	int r = qcow2_create(a->path, &o, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "blk-bench: %s\n", err);
	return r;
}

static int bench_parse(int argc, char **argv, struct bench_args *a)
{
	*a = (struct bench_args){.format = "raw", .engine = "auto", .cache = "none",
				 .rw = "randread", .bs = 4096, .qd = 1, .seconds = 5};
	if (argc < 2)
		return -EINVAL;
	a->cmd = argv[1];
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		char *end = NULL;
		if (!strcmp(k, "--path"))
			a->path = v;
		else if (!strcmp(k, "--format"))
			a->format = v;
		else if (!strcmp(k, "--engine"))
			a->engine = v;
		else if (!strcmp(k, "--cache"))
			a->cache = v;
		else if (!strcmp(k, "--rw"))
			a->rw = v;
		else if (!strcmp(k, "--bs"))
			a->bs = strtoull(v, &end, 0);
		else if (!strcmp(k, "--size"))
			a->size = strtoull(v, &end, 0);
		else if (!strcmp(k, "--qd"))
			a->qd = (unsigned)strtoul(v, &end, 0);
		else if (!strcmp(k, "--time"))
			a->seconds = strtod(v, &end);
		else if (!strcmp(k, "--loop"))
			a->loop = strtoul(v, &end, 0) != 0;
		else if (!strcmp(k, "--kick-each"))
			a->kick_each = strtoul(v, &end, 0) != 0;
		else if (!strcmp(k, "--per-io"))
			a->per_io = strtoul(v, &end, 0) != 0;
		else
			return -EINVAL;
		if (end && *end)
			return -EINVAL;
	}
	if (!a->path || a->bs == 0 || a->bs % BLK_SECTOR_SIZE || a->bs > (64u << 20))
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_args a;
	int r;

	if (bench_parse(argc, argv, &a) < 0) {
		fprintf(stderr, "usage: blk-bench run|fill|create-qcow2 --path F [--format raw|qcow2]\n"
				"  [--engine auto|io_uring|threads] [--cache none|writeback]\n"
				"  [--rw randread|randwrite|read|write] [--bs N] [--qd N] [--time S]"
				" [--size N] [--loop 0|1] [--kick-each 0|1]\n"
				"  [--per-io 0|1]\n");
		return 2;
	}
	if (!strcmp(a.cmd, "run"))
		r = bench_run(&a);
	else if (!strcmp(a.cmd, "fill"))
		r = bench_fill(&a);
	else if (!strcmp(a.cmd, "create-qcow2"))
		r = bench_create_qcow2(&a);
	else
		r = -EINVAL;
	return r < 0 ? 1 : 0;
}
