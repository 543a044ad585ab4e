/* SPDX-License-Identifier: MIT */
/*
 * `vireo img info`: format, sizes, cluster size, backing file, snapshots and flags of an
 * image (and with --backing-chain of every image under it), as text or JSON with keys
 * like qemu-img's ("virtual-size", "actual-size", "format", "cluster-size",
 * "backing-filename", "dirty-flag", "snapshots", ...).
 */
#include "cli/img.h"
#include "cli/cli.h"
#include "block/qcow2.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

static void usage_info(FILE *f)
{
	fprintf(f,
		"Usage: vireo img info [-f FMT] [--backing-chain] [--json] [-U] FILE\n"
		"\n"
		"Show an image's format, virtual size, disk usage, cluster size, backing file,\n"
		"internal snapshots and dirty/corrupt flags.\n"
		"  -f FMT            raw, qcow2, vmdk or vhd (else guessed, shown as '(probed)';\n"
		"                    a guessed qcow2 with --backing-chain is refused)\n"
		"  --backing-chain   also every backing file under it (else no backing file is\n"
		"                    opened: a missing one is no error)\n"
		"  --json            JSON (an array with --backing-chain); also --output=json\n"
		"  -U                do not take the image lock (image in use by a VM)\n");
}

/* Everything we show about one image of the chain. */
struct info_one {
	struct img *im;
	bool probed;
	bool is_qcow2;
	struct qcow2_info q;
	struct qcow2_snapshot_info *snaps;
	unsigned nsnaps;
};

static int info_gather(const char *cmd, struct info_one *o)
{
	int ret;

	o->is_qcow2 = !strcmp(img_fmt_name(o->im), "qcow2");
	if (!o->is_qcow2)
		return 0;
	ret = qcow2_get_info(o->im, &o->q);
	if (!ret)
		ret = qcow2_snapshot_list(o->im, &o->snaps, &o->nsnaps);
	if (ret)
		return img_fail(cmd, "image '%s': cannot read its details: %s", o->im->path,
				strerror(-ret));
	return 0;
}

/* Where the backing file is, as the image resolves its name (relative: its folder). */
static void backing_full(const struct img *im, const char *name, char *buf, size_t len)
{
	const char *slash = strrchr(im->path, '/');

	if (im->backing)
		snprintf(buf, len, "%s", im->backing->path);
	else if (name[0] != '/' && slash)
		snprintf(buf, len, "%.*s%s", (int)(slash - im->path + 1), im->path, name);
	else
		snprintf(buf, len, "%s", name);
}

static void info_human(const struct info_one *o)
{
	const struct img *im = o->im;
	char hs[32], ds[32];

	img_human_size(im->size, hs, sizeof(hs));
	img_human_size(img_disk_usage(im->path), ds, sizeof(ds));
	printf("image: %s\n", im->path);
	printf("file format: %s%s\n", img_fmt_name(im), o->probed ? " (probed)" : "");
	printf("virtual size: %s (%llu bytes)\n", hs, (unsigned long long)im->size);
	printf("disk size: %s\n", ds);
	if (!o->is_qcow2)
		return;
	printf("cluster_size: %u\n", o->q.cluster_size);
	if (o->q.backing_file) {
		char full[4200];
		backing_full(im, o->q.backing_file, full, sizeof(full));
		if (strcmp(full, o->q.backing_file))
			printf("backing file: %s (actual path: %s)\n", o->q.backing_file, full);
		else
			printf("backing file: %s\n", o->q.backing_file);
		printf("backing file format: %s\n", o->q.backing_fmt ? o->q.backing_fmt : "raw");
	}
	if (o->nsnaps)
		img_snapshot_table(stdout, o->snaps, o->nsnaps);
	printf("Format specific information:\n");
	printf("    compat: %s\n", o->q.version >= 3 ? "1.1" : "0.10");
	printf("    compression type: %s\n", o->q.compression);
	printf("    lazy refcounts: %s\n", o->q.lazy_refcounts ? "true" : "false");
	printf("    refcount bits: %u\n", o->q.refcount_bits);
	printf("    corrupt: %s\n", o->q.corrupt ? "true" : "false");
	printf("    dirty: %s\n", o->q.dirty ? "true" : "false");
}

static void info_json(struct img_json *w, const struct info_one *o)
{
	const struct img *im = o->im;

	img_json_obj_begin(w, NULL);
	img_json_u64(w, "virtual-size", im->size);
	img_json_str(w, "filename", im->path);
	if (o->is_qcow2)
		img_json_u64(w, "cluster-size", o->q.cluster_size);
	img_json_str(w, "format", img_fmt_name(im));
	img_json_bool(w, "format-probed", o->probed);
	img_json_u64(w, "actual-size", img_disk_usage(im->path));
	if (o->is_qcow2) {
		if (o->q.backing_file) {
			char full[4200];
			backing_full(im, o->q.backing_file, full, sizeof(full));
			img_json_str(w, "backing-filename", o->q.backing_file);
			img_json_str(w, "full-backing-filename", full);
			img_json_str(w, "backing-filename-format",
				     o->q.backing_fmt ? o->q.backing_fmt : "raw");
		}
		if (o->nsnaps)
			img_snapshot_json(w, "snapshots", o->snaps, o->nsnaps);
		img_json_obj_begin(w, "format-specific");
		img_json_str(w, "type", "qcow2");
		img_json_obj_begin(w, "data");
		img_json_str(w, "compat", o->q.version >= 3 ? "1.1" : "0.10");
		img_json_str(w, "compression-type", o->q.compression);
		img_json_bool(w, "lazy-refcounts", o->q.lazy_refcounts);
		img_json_u64(w, "refcount-bits", o->q.refcount_bits);
		img_json_bool(w, "corrupt", o->q.corrupt);
		img_json_bool(w, "extended-l2", false);
		img_json_obj_end(w);
		img_json_obj_end(w);
		img_json_bool(w, "dirty-flag", o->q.dirty);
		img_json_bool(w, "corrupt-flag", o->q.corrupt);
	}
	img_json_obj_end(w);
}

enum { OPT_CHAIN = 256, OPT_JSON, OPT_OUTPUT };

static const struct option info_opts[] = {
    {"backing-chain", no_argument, NULL, OPT_CHAIN},
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"format", required_argument, NULL, 'f'},
    {"force-share", no_argument, NULL, 'U'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* --json / --output=json|human, shared by info, check and map. */
int img_output_arg(const char *cmd, const char *v, bool *json)
{
	if (!strcmp(v, "json"))
		*json = true;
	else if (!strcmp(v, "human"))
		*json = false;
	else
		return img_usage_error(cmd, "--output '%s': expected human or json", v);
	return 0;
}

int img_cmd_info(int argc, char **argv)
{
	const char *cmd = "info", *fmt = NULL;
	bool chain = false, json = false, probed = false;
	unsigned flags = IMG_O_RDONLY;
	struct info_one one[IMG_MAX_CHAIN + 1];
	unsigned n = 0;
	struct img *top = NULL;
	enum vlog_level lvl;
	int o, ret;

	while ((o = getopt_long(argc, argv, ":f:Uh", info_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'U':
			flags |= IMG_O_NOLOCK;
			break;
		case OPT_CHAIN:
			chain = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_OUTPUT:
			ret = img_output_arg(cmd, optarg, &json);
			if (ret)
				return ret;
			break;
		case 'h':
			usage_info(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, o, argv);
		}
	}
	if (fmt && (ret = img_check_format_arg(cmd, "-f", fmt, false)))
		return ret;
	ret = img_want_args(cmd, argc, argv, 1, 1, "FILE");
	if (ret)
		return ret;
	/* As qemu-img: only --backing-chain opens the backing files, so the header of an
	 * image whose backing file is missing can still be shown (a guessed format too). */
	if (!chain)
		flags |= IMG_O_NO_BACKING;
	/* The flags are shown below; the driver's "opened a dirty image" warning is noise. */
	lvl = vlog_get_level();
	if (lvl < VLOG_INFO)
		vlog_set_level(VLOG_ERR);
	ret = img_cli_open(cmd, argv[optind], fmt, flags, &top, &probed);
	vlog_set_level(lvl);
	if (ret)
		return ret;
	memset(one, 0, sizeof(one));
	for (struct img *im = top; im && n < ARRAY_SIZE(one); im = chain ? im->backing : NULL) {
		one[n].im = im;
		one[n].probed = n == 0 && probed;
		ret = info_gather(cmd, &one[n++]);
		if (ret)
			goto out;
	}
	if (json) {
		struct img_json w;
		img_json_init(&w, stdout);
		if (chain)
			img_json_arr_begin(&w, NULL);
		for (unsigned i = 0; i < n; i++)
			info_json(&w, &one[i]);
		if (chain)
			img_json_arr_end(&w);
		img_json_finish(&w);
	} else {
		for (unsigned i = 0; i < n; i++) {
			if (i)
				printf("\n");
			info_human(&one[i]);
		}
	}
	if (fflush(stdout) != 0)
		ret = img_fail(cmd, "writing the output failed");
out:
	for (unsigned i = 0; i < n; i++)
		free(one[i].snaps);
	img_close(top);
	return ret;
}
