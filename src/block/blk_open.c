/* SPDX-License-Identifier: MIT */
/* blk_open/blk_close: open the disk, take its lock, pick the engine. */
#include "block/blk_backend.h"
#include "block/image.h"
#include "common/evloop.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

void blk_config_defaults(struct blk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->format, sizeof(cfg->format), "raw");
	cfg->cache = BLK_CACHE_WRITEBACK;
	cfg->engine = BLK_ENGINE_AUTO;
}

const char *blk_cache_name(enum blk_cache c)
{
	switch (c) {
	case BLK_CACHE_WRITEBACK:
		return "writeback";
	case BLK_CACHE_WRITETHROUGH:
		return "writethrough";
	case BLK_CACHE_NONE:
		return "none";
	case BLK_CACHE_UNSAFE:
		return "unsafe";
	}
	return "?";
}

static bool is_pow2(unsigned x)
{
	return x && !(x & (x - 1));
}

/* The engine asked for: the config, else VIREO_BLK_ENGINE (for tests), else auto. */
static enum blk_engine blk_engine_wanted(const struct blk_config *cfg)
{
	if (cfg->engine != BLK_ENGINE_AUTO)
		return cfg->engine;
	const char *e = getenv("VIREO_BLK_ENGINE");
	if (e && !strcmp(e, "threads"))
		return BLK_ENGINE_THREADS;
	if (e && !strcmp(e, "io_uring"))
		return BLK_ENGINE_URING;
	if (e && !strcmp(e, "image"))
		return BLK_ENGINE_IMAGE;
	return BLK_ENGINE_AUTO;
}

/* Logical and physical block sizes of the raw disk. */
static void raw_block_sizes(struct blk_backend *be, const struct stat *st)
{
	unsigned lbs = BLK_SECTOR_SIZE, pbs = BLK_SECTOR_SIZE;

	if (be->is_blkdev) {
		int l = 0;
		unsigned p = 0;
		if (ioctl(be->fd, BLKSSZGET, &l) == 0 && l > 0)
			lbs = (unsigned)l;
		if (ioctl(be->fd, BLKPBSZGET, &p) == 0)
			pbs = p;
	} else {
#ifdef STATX_DIOALIGN
		struct statx sx;
		if (be->info.cache == BLK_CACHE_NONE &&
		    statx(be->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
		    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align > lbs)
			lbs = sx.stx_dio_offset_align;
#endif
		if (st->st_blksize > 0)
			pbs = (unsigned)MIN((unsigned long)st->st_blksize, 4096ul);
	}
	if (!is_pow2(lbs) || lbs < BLK_SECTOR_SIZE || lbs > 4096)
		lbs = BLK_SECTOR_SIZE;
	if (!is_pow2(pbs) || pbs < lbs || pbs > 65536)
		pbs = lbs;
	be->info.logical_block = lbs;
	be->info.physical_block = pbs;
}

static int raw_open(struct blk_backend *be, const struct blk_config *cfg, char *err,
		    size_t errlen)
{
	int flags = O_CLOEXEC | (cfg->readonly ? O_RDONLY : O_RDWR);
	struct stat st;
	uint64_t size;
	int r;

	if (cfg->cache == BLK_CACHE_NONE)
		flags |= O_DIRECT;
	be->fd = open(cfg->path, flags);
	if (be->fd < 0) {
		r = -errno;
		if (r == -EINVAL && cfg->cache == BLK_CACHE_NONE)
			snprintf(err, errlen, "disk '%s': cache=none: O_DIRECT not supported here",
				 cfg->path);
		else if ((r == -EROFS || r == -EACCES) && !cfg->readonly)
			snprintf(err, errlen, "disk '%s': cannot open read-write: %s (readonly=on?)",
				 cfg->path, strerror(-r));
		else
			snprintf(err, errlen, "disk '%s': %s", cfg->path, strerror(-r));
		return r;
	}
	if (fstat(be->fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "disk '%s': %s", cfg->path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "disk '%s': not a regular file or block device", cfg->path);
		return -EINVAL;
	}
	be->is_blkdev = S_ISBLK(st.st_mode);

	/* Open file description lock: released when the fd is closed, never by another fd. */
	struct flock fl = {.l_type = cfg->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(be->fd, F_OFD_SETLK, &fl) < 0) {
		r = -errno;
		if (r == -EAGAIN || r == -EACCES) {
			snprintf(err, errlen, "disk '%s' is in use by another VM", cfg->path);
			return -EBUSY;
		}
		/* A file system without lock support is no reason to refuse the disk. */
		vwarn("disk '%s': cannot lock (%s), continuing without a lock", cfg->path,
		      strerror(-r));
	}

	if (be->is_blkdev) {
		if (ioctl(be->fd, BLKGETSIZE64, &size) < 0) {
			r = -errno;
			snprintf(err, errlen, "disk '%s': size: %s", cfg->path, strerror(-r));
			return r;
		}
	} else {
		size = (uint64_t)st.st_size;
	}
	raw_block_sizes(be, &st);
	be->info.size = ALIGN_DOWN(size, (uint64_t)be->info.logical_block);
	if (be->info.size == 0) {
		snprintf(err, errlen, "disk '%s': smaller than one %u-byte block", cfg->path,
			 be->info.logical_block);
		return -EINVAL;
	}
	if (be->info.size != size)
		vwarn("disk '%s': size %llu is not a multiple of %u; the last %llu bytes are unused",
		      cfg->path, (unsigned long long)size, be->info.logical_block,
		      (unsigned long long)(size - be->info.size));
	be->info.can_discard = true;
	be->info.can_unmap = true;

	enum blk_engine eng = blk_engine_wanted(cfg);
	if (eng != BLK_ENGINE_THREADS) {
		r = blk_uring_init(be);
		if (r == 0)
			return 0;
		if (eng == BLK_ENGINE_URING) {
			snprintf(err, errlen, "disk '%s': io_uring: %s", cfg->path, strerror(-r));
			return r;
		}
		vinfo("disk '%s': io_uring unavailable (%s); using worker threads", cfg->path,
		      strerror(-r));
	}
	r = blk_pool_init_raw(be);
	if (r)
		snprintf(err, errlen, "disk '%s': worker threads: %s", cfg->path, strerror(-r));
	return r;
}

static int image_open(struct blk_backend *be, const struct blk_config *cfg, char *err,
		      size_t errlen)
{
	unsigned flags = 0;
	int r;

	if (blk_engine_wanted(cfg) == BLK_ENGINE_URING) {
		snprintf(err, errlen, "disk '%s': aio=io_uring needs format=raw", cfg->path);
		return -EINVAL;
	}
	if (cfg->readonly)
		flags |= IMG_O_RDONLY;
	if (cfg->cache == BLK_CACHE_NONE)
		flags |= IMG_O_DIRECT;
	else if (cfg->cache == BLK_CACHE_WRITETHROUGH)
		flags |= IMG_O_WRITETHROUGH;
	else if (cfg->cache == BLK_CACHE_UNSAFE)
		flags |= IMG_O_UNSAFE;
	r = img_open(&be->img, cfg->path, cfg->format, flags, err, errlen);
	if (r == -EBUSY)
		snprintf(err, errlen, "disk '%s' is in use by another VM", cfg->path);
	if (r)
		return r;
	unsigned lbs = be->img->block_size;
	if (!is_pow2(lbs) || lbs < BLK_SECTOR_SIZE || lbs > 4096)
		lbs = BLK_SECTOR_SIZE;
	be->info.logical_block = be->info.physical_block = lbs;
	be->info.size = ALIGN_DOWN(be->img->size, (uint64_t)lbs);
	be->info.readonly = cfg->readonly || be->img->readonly;
	be->info.can_discard = true;
	be->info.can_unmap = true;
	if (be->info.size == 0) {
		snprintf(err, errlen, "disk '%s': virtual size is smaller than one block", cfg->path);
		return -EINVAL;
	}
	r = blk_pool_init_image(be);
	if (r)
		snprintf(err, errlen, "disk '%s': worker threads: %s", cfg->path, strerror(-r));
	return r;
}

/* A backend with its completion plumbing, no disk yet. */
static int blk_alloc(struct blk_backend **out, const char *path, bool readonly,
		     enum blk_cache cache, const char *serial)
{
	struct blk_backend *be = calloc(1, sizeof(*be));
	int r;

	*out = NULL;
	if (!be)
		return -ENOMEM;
	be->fd = -1;
	be->efd = -1;
	be->engine_fd = -1;
	be->zero_buf = MAP_FAILED;
	pthread_mutex_init(&be->lock, NULL);
	pthread_cond_init(&be->delivered, NULL);
	be->info.readonly = readonly;
	be->info.cache = cache;
	snprintf(be->info.serial, sizeof(be->info.serial), "%s", serial);
	be->path = strdup(path);
	if (!be->path) {
		blk_close(be);
		return -ENOMEM;
	}
	be->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	be->zero_buf = mmap(NULL, BLK_ZERO_BUF_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (be->efd < 0 || be->zero_buf == MAP_FAILED) {
		r = -errno;
		blk_close(be);
		return r;
	}
	*out = be;
	return 0;
}

int blk_backend_new(struct blk_backend **out, const struct blk_backend_ops *ops, void *priv,
		    const struct blk_info *info, struct evloop *loop)
{
	struct blk_backend *be;
	int r = blk_alloc(&be, ops->name, info->readonly, info->cache, info->serial);
	if (r)
		return r;
	be->info = *info;
	be->info.engine = ops->name;
	be->ops = ops;
	be->priv = priv;
	r = blk_attach_loop(be, loop);
	if (r) {
		blk_close(be);
		return r;
	}
	*out = be;
	return 0;
}

int blk_open(struct blk_backend **out, const struct blk_config *cfg, struct evloop *loop,
	     char *err, size_t errlen)
{
	struct blk_backend *be;
	int r;

	*out = NULL;
	if (!cfg->path[0]) {
		snprintf(err, errlen, "disk: empty path");
		return -EINVAL;
	}
	r = blk_alloc(&be, cfg->path, cfg->readonly, cfg->cache, cfg->serial);
	if (r) {
		snprintf(err, errlen, "disk '%s': %s", cfg->path, strerror(-r));
		return r;
	}
	if (!strcmp(cfg->format, "raw") && blk_engine_wanted(cfg) != BLK_ENGINE_IMAGE)
		r = raw_open(be, cfg, err, errlen);
	else
		r = image_open(be, cfg, err, errlen);
	if (r)
		goto fail;
	be->info.engine = be->ops->name;
	r = blk_attach_loop(be, loop);
	if (r) {
		snprintf(err, errlen, "disk '%s': I/O loop: %s", cfg->path, strerror(-r));
		goto fail;
	}
	vdebug("disk '%s': %llu bytes, %s, cache=%s%s", cfg->path,
	       (unsigned long long)be->info.size, be->info.engine, blk_cache_name(cfg->cache),
	       be->info.readonly ? ", read-only" : "");
	*out = be;
	return 0;
fail:
	blk_close(be);
	return r;
}

void blk_close(struct blk_backend *be)
{
	if (!be)
		return;
	if (be->ops) {
		blk_quiesce(be);
		if (blk_attach_loop(be, NULL) < 0)
			vwarn("disk '%s': cannot leave the I/O loop", be->path);
		if (be->ops->close)
			be->ops->close(be);
	}
	if (be->img)
		img_close(be->img);
	if (be->fd >= 0)
		close(be->fd);
	if (be->efd >= 0)
		close(be->efd);
	if (be->zero_buf != MAP_FAILED)
		munmap(be->zero_buf, BLK_ZERO_BUF_SIZE);
	pthread_cond_destroy(&be->delivered);
	pthread_mutex_destroy(&be->lock);
	free(be->path);
	free(be);
}
