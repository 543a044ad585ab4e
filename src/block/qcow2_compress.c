/* SPDX-License-Identifier: MIT */
/*
 * qcow2 compressed clusters, read side (writes: qcow2_compress_write.c): raw deflate
 * (compression type 0) or zstd frames (type 1). The caller holds s->comp_lock; the
 * result stays in s->comp_out until the next call, which makes sequential small reads of
 * one cluster cheap.
 * Decompression must produce exactly one cluster or the cluster is reported as -EIO.
 */
#include "block/qcow2_int.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>

static int comp_buffers(struct qcow2_state *s)
{
	if (s->comp_out)
		return 0;
	s->comp_in = malloc(2 * s->cluster_size + 1024);
	s->comp_out = malloc(s->cluster_size);
	if (!s->comp_in || !s->comp_out) {
		free(s->comp_in);
		free(s->comp_out);
		s->comp_in = s->comp_out = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int inflate_raw(struct qcow2_state *s, size_t in_len)
{
	int zr;

	if (!s->zs_ready) {
		if (inflateInit2(&s->zs, -12) != Z_OK)
			return -ENOMEM;
		s->zs_ready = true;
	} else if (inflateReset(&s->zs) != Z_OK) {
		return -EIO;
	}
	s->zs.next_in = s->comp_in;
	s->zs.avail_in = (uInt)in_len;
	s->zs.next_out = s->comp_out;
	s->zs.avail_out = (uInt)s->cluster_size;
	zr = inflate(&s->zs, Z_FINISH);
	/* The stored length is rounded up to sectors, so input may remain: fine once full. */
	if ((zr == Z_STREAM_END || zr == Z_BUF_ERROR || zr == Z_OK) && s->zs.avail_out == 0)
		return 0;
	return -EIO;
}

static int unzstd(struct qcow2_state *s, size_t in_len)
{
	ZSTD_inBuffer in = { s->comp_in, in_len, 0 };
	ZSTD_outBuffer out = { s->comp_out, s->cluster_size, 0 };

	if (!s->zctx) {
		s->zctx = ZSTD_createDCtx();
		if (!s->zctx)
			return -ENOMEM;
	}
	ZSTD_DCtx_reset(s->zctx, ZSTD_reset_session_only);
	while (out.pos < out.size && in.pos < in.size) {
		size_t prev_in = in.pos, prev_out = out.pos;
		size_t r = ZSTD_decompressStream(s->zctx, &out, &in);
		if (ZSTD_isError(r))
			return -EIO;
		if (in.pos == prev_in && out.pos == prev_out)
			break; /* no progress: truncated input */
	}
	return out.pos == out.size ? 0 : -EIO;
}

int qcow2_decompress_cluster(struct qcow2_state *s, uint64_t l2e, uint8_t **out)
{
	uint64_t off, len, fsize;
	int ret;

	ret = comp_buffers(s);
	if (ret)
		return ret;
	if (s->comp_cached == l2e && l2e) {
		*out = s->comp_out;
		return 0;
	}
	qcow2_compressed_range(s, l2e, &off, &len);
	ret = img_file_size(s->im, &fsize);
	if (ret)
		return ret;
	if (len > 2 * s->cluster_size + 512 || off >= fsize) {
		img_report(s->im, "compressed cluster descriptor 0x%llx out of range",
			   (unsigned long long)l2e);
		return -EIO;
	}
	s->comp_cached = 0;
	ret = img_file_pread(s->im, s->comp_in, len, off);
	if (ret)
		return ret;
	ret = s->compression == QCOW2_COMPRESSION_ZSTD ? unzstd(s, len) : inflate_raw(s, len);
	if (ret == -EIO)
		img_report(s->im, "compressed cluster at 0x%llx does not decompress",
			   (unsigned long long)off);
	if (ret)
		return ret;
	s->comp_cached = l2e;
	*out = s->comp_out;
	return 0;
}

void qcow2_compress_fini(struct qcow2_state *s)
{
	qcow2_compress_write_fini(s);
	if (s->zs_ready)
		inflateEnd(&s->zs);
	s->zs_ready = false;
	ZSTD_freeDCtx(s->zctx);
	s->zctx = NULL;
	free(s->comp_in);
	free(s->comp_out);
	s->comp_in = s->comp_out = NULL;
}
