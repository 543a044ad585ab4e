/* SPDX-License-Identifier: MIT */
/*
 * `vireo img map`: the allocation of an image's virtual disk, as extents (offset, length,
 * data/zero, the depth in the backing chain that provides it, the host offset), in
 * qemu-img map's two layouts: human (data extents and where they live) and JSON (every
 * extent: "start", "length", "depth", "present", "zero", "data", "offset").
 */
#include "cli/img.h"
#include "cli/cli.h"

#include <errno.h>
#include <string.h>

static void usage_map(FILE *f)
{
	fprintf(f,
		"Usage: vireo img map [-f FMT] [--json] [--start-offset OFF] [--max-length LEN]\n"
		"                     [-U] FILE\n"
		"\n"
		"Show where the image's data is: in human form the data extents with their file\n"
		"and offset in it; with --json (or --output=json) every extent, as qemu-img map.\n"
		"  -U   do not take the image lock\n");
}

struct map_ext {
	uint64_t start, len;
	enum img_extent_kind kind;
	unsigned depth;
	bool has_host;
	uint64_t host;
	const struct img *layer; /* image at `depth` */
};

struct map_out {
	bool json;
	struct img_json w;
};

static const struct img *layer_at(const struct img *im, unsigned depth)
{
	while (depth-- && im->backing)
		im = im->backing;
	return im;
}

static void map_emit(struct map_out *o, const struct map_ext *e)
{
	if (o->json) {
		img_json_obj_begin(&o->w, NULL);
		img_json_u64(&o->w, "start", e->start);
		img_json_u64(&o->w, "length", e->len);
		img_json_u64(&o->w, "depth", e->depth);
		img_json_bool(&o->w, "present", e->kind != IMG_EXT_UNALLOCATED);
		img_json_bool(&o->w, "zero", e->kind != IMG_EXT_DATA);
		img_json_bool(&o->w, "data", e->kind == IMG_EXT_DATA);
		if (e->has_host)
			img_json_u64(&o->w, "offset", e->host);
		img_json_str(&o->w, "filename", e->layer->path);
		img_json_obj_end(&o->w);
		return;
	}
	if (e->kind != IMG_EXT_DATA)
		return;
	if (e->has_host)
		printf("%#-16llx%#-16llx%#-16llx%s\n", (unsigned long long)e->start,
		       (unsigned long long)e->len, (unsigned long long)e->host, e->layer->path);
	else /* compressed or a format that does not say */
		printf("%#-16llx%#-16llx%-16s%s\n", (unsigned long long)e->start,
		       (unsigned long long)e->len, "-", e->layer->path);
}

static bool map_can_merge(const struct map_ext *a, const struct map_ext *b)
{
	if (a->kind != b->kind || a->depth != b->depth || a->has_host != b->has_host)
		return false;
	return !a->has_host || a->host + a->len == b->host;
}

enum { OPT_JSON = 256, OPT_OUTPUT, OPT_START, OPT_MAXLEN };

static const struct option map_opts[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"start-offset", required_argument, NULL, OPT_START},
    {"max-length", required_argument, NULL, OPT_MAXLEN},
    {"format", required_argument, NULL, 'f'},
    {"force-share", no_argument, NULL, 'U'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int map_size_arg(const char *cmd, const char *opt, const char *v, uint64_t *out)
{
	if (img_parse_size(v, out))
		return img_usage_error(cmd, "%s '%s': not a size", opt, v);
	return 0;
}

static int map_walk(const char *cmd, struct img *im, uint64_t off, uint64_t end, struct map_out *o)
{
	struct map_ext cur = {0};
	bool have = false;

	while (off < end) {
		struct img_extent ext;
		struct map_ext e;
		int ret = img_map(im, off, end - off, &ext);

		if (ret) {
			char why[320];
			return img_fail(cmd, "image '%s': cannot map offset %llu: %s", im->path,
					(unsigned long long)off,
					img_req_error(im, ret, why, sizeof(why)));
		}
		if (ext.len == 0 || ext.len > end - off)
			return img_fail(cmd, "image '%s': map of offset %llu returned a bad extent",
					im->path, (unsigned long long)off);
		e = (struct map_ext){.start = off,
				     .len = ext.len,
				     .kind = ext.kind,
				     .depth = ext.depth,
				     .layer = layer_at(im, ext.depth)};
		if (!strcmp(img_fmt_name(e.layer), "raw")) {
			/* A raw file maps one to one, holes included (as qemu-img shows them). */
			e.has_host = ext.kind != IMG_EXT_UNALLOCATED;
			e.host = off;
		} else {
			/* Elsewhere host offset 0 (the header's place) means "not known". */
			e.has_host = ext.kind == IMG_EXT_DATA && ext.host_offset;
			e.host = ext.host_offset;
		}
		if (have && map_can_merge(&cur, &e)) {
			cur.len += e.len;
		} else {
			if (have)
				map_emit(o, &cur);
			cur = e;
			have = true;
		}
		off += ext.len;
	}
	if (have)
		map_emit(o, &cur);
	return 0;
}

int img_cmd_map(int argc, char **argv)
{
	const char *cmd = "map", *fmt = NULL;
	uint64_t start = 0, maxlen = UINT64_MAX, end;
	unsigned flags = IMG_O_RDONLY;
	struct map_out o = {0};
	struct img *im;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, ":f:Uh", map_opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			fmt = optarg;
			break;
		case 'U':
			flags |= IMG_O_NOLOCK;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_OUTPUT:
			if ((ret = img_output_arg(cmd, optarg, &o.json)))
				return ret;
			break;
		case OPT_START:
			if ((ret = map_size_arg(cmd, "--start-offset", optarg, &start)))
				return ret;
			break;
		case OPT_MAXLEN:
			if ((ret = map_size_arg(cmd, "--max-length", optarg, &maxlen)))
				return ret;
			break;
		case 'h':
			usage_map(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, opt, argv);
		}
	}
	if (fmt && (ret = img_check_format_arg(cmd, "-f", fmt, false)))
		return ret;
	ret = img_want_args(cmd, argc, argv, 1, 1, "FILE");
	if (ret)
		return ret;
	ret = img_cli_open(cmd, argv[optind], fmt, flags, &im, NULL);
	if (ret)
		return ret;
	if (add_overflows(start, maxlen, &end) || end > im->size)
		end = im->size;
	if (o.json) {
		img_json_init(&o.w, stdout);
		img_json_arr_begin(&o.w, NULL);
	} else {
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	}
	ret = start < end ? map_walk(cmd, im, start, end, &o) : 0;
	if (o.json) { /* still a complete document after an error */
		img_json_arr_end(&o.w);
		img_json_finish(&o.w);
	}
	if (!ret && fflush(stdout))
		ret = img_fail(cmd, "writing the output failed");
	img_close(im);
	return ret;
}
