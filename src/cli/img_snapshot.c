/* SPDX-License-Identifier: MIT */
/*
 * `vireo img snapshot`: list, create, delete and apply (revert to) qcow2 internal
 * snapshots (disk state only), and the snapshot table that info shares.
 */
#include "cli/img.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage_snapshot(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vireo img snapshot [-f FMT] [-q] [-U] -l | -c NAME | -d NAME | -a NAME FILE\n"
	    "\n"
	    "Internal snapshots of a qcow2 image (disk state only):\n"
	    "  -l        list them (with --json as JSON)\n"
	    "  -c NAME   create one of the current disk\n"
	    "  -d NAME   delete one (by id or name)\n"
	    "  -a NAME   apply one: revert the disk to it (the snapshot stays)\n"
	    "  -q        print nothing on success\n"
	    "  -U        (with -l) do not take the image lock\n");
}

void img_snapshot_table(FILE *f, const struct qcow2_snapshot_info *s, unsigned n)
{
	fprintf(f, "Snapshot list:\n");
	fprintf(f, "%-9s %-17s %7s%20s%13s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK");
	for (unsigned i = 0; i < n; i++) {
		char vs[32], date[32] = "", clk[48];
		time_t t = (time_t)s[i].date_sec;
		struct tm tm;
		uint64_t ms = s[i].vm_clock_nsec / 1000000;

		img_human_size(s[i].vm_state_size, vs, sizeof(vs));
		if (localtime_r(&t, &tm))
			strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(clk, sizeof(clk), "%02llu:%02llu:%02llu.%03llu",
			 (unsigned long long)(ms / 3600000), (unsigned long long)(ms / 60000 % 60),
			 (unsigned long long)(ms / 1000 % 60), (unsigned long long)(ms % 1000));
		fprintf(f, "%-9s %-17s %7s %19s %12s\n", s[i].id, s[i].name, vs, date, clk);
	}
}

void img_snapshot_json(struct img_json *w, const char *key, const struct qcow2_snapshot_info *s,
		       unsigned n)
{
	img_json_arr_begin(w, key);
	for (unsigned i = 0; i < n; i++) {
		img_json_obj_begin(w, NULL);
		img_json_str(w, "id", s[i].id);
		img_json_str(w, "name", s[i].name);
		img_json_u64(w, "vm-state-size", s[i].vm_state_size);
		img_json_u64(w, "disk-size", s[i].disk_size);
		img_json_u64(w, "date-sec", s[i].date_sec);
		img_json_u64(w, "date-nsec", s[i].date_nsec);
		img_json_u64(w, "vm-clock-sec", s[i].vm_clock_nsec / 1000000000);
		img_json_u64(w, "vm-clock-nsec", s[i].vm_clock_nsec % 1000000000);
		img_json_obj_end(w);
	}
	img_json_arr_end(w);
}

static int snapshot_list(const char *cmd, struct img *im, bool json)
{
	struct qcow2_snapshot_info *s = NULL;
	unsigned n = 0;
	int ret = qcow2_snapshot_list(im, &s, &n);

	if (ret)
		return img_fail(cmd, "image '%s': cannot list snapshots: %s", im->path,
				strerror(-ret));
	if (json) {
		struct img_json w;
		img_json_init(&w, stdout);
		img_snapshot_json(&w, NULL, s, n);
		img_json_finish(&w);
	} else if (n) {
		img_snapshot_table(stdout, s, n);
	}
	free(s);
	return fflush(stdout) ? img_fail(cmd, "writing the output failed") : CLI_EXIT_OK;
}

static int snapshot_change(const char *cmd, struct img *im, int action, const char *name)
{
	int ret;
	const char *what;

	switch (action) {
	case 'c':
		ret = qcow2_snapshot_create(im, name);
		what = "create";
		break;
	case 'd':
		ret = qcow2_snapshot_delete(im, name);
		what = "delete";
		break;
	default:
		ret = qcow2_snapshot_apply(im, name);
		what = "apply";
		break;
	}
	if (!ret)
		ret = img_flush(im);
	switch (ret) {
	case 0:
		return CLI_EXIT_OK;
	case -EEXIST:
		return img_fail(cmd, "image '%s': a snapshot named '%s' already exists", im->path,
				name);
	case -ENOENT:
		return img_fail(cmd, "image '%s': no snapshot with id or name '%s'", im->path,
				name);
	case -ENOTSUP:
		return img_fail(cmd,
				"image '%s': cannot %s snapshot '%s': its refcounts are too "
				"narrow (refcount_bits=1)",
				im->path, what, name);
	case -ENOSPC:
		return img_fail(cmd,
				"image '%s': cannot %s snapshot '%s': too many snapshots or "
				"no space",
				im->path, what, name);
	default:
		return img_fail(cmd, "image '%s': cannot %s snapshot '%s': %s", im->path, what,
				name, strerror(-ret));
	}
}

enum { OPT_JSON = 256 };

static const struct option snapshot_opts[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int img_cmd_snapshot(int argc, char **argv)
{
	const char *cmd = "snapshot", *fmt = NULL, *name = NULL;
	int action = 0, o, ret;
	bool json = false;
	unsigned flags = 0;
	struct img *im;

	while ((o = getopt_long(argc, argv, ":f:lc:d:a:qUh", snapshot_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'l':
		case 'c':
		case 'd':
		case 'a':
			if (action)
				return img_usage_error(cmd, "give only one of -l, -c, -d, -a");
			action = o;
			name = o == 'l' ? NULL : optarg;
			break;
		case 'q':
			break; /* nothing is printed on success anyway */
		case 'U':
			flags |= IMG_O_NOLOCK;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			usage_snapshot(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, o, argv);
		}
	}
	if (fmt && (ret = img_check_format_arg(cmd, "-f", fmt, false)))
		return ret;
	if (!action)
		return img_usage_error(cmd, "say what to do: -l, -c NAME, -d NAME or -a NAME");
	if (name && !*name)
		return img_usage_error(cmd, "empty snapshot name");
	if (name && strlen(name) > 255)
		return img_usage_error(cmd, "snapshot name longer than 255 bytes");
	if (action != 'l' && (flags & IMG_O_NOLOCK))
		return img_usage_error(cmd, "-U only goes with -l (changes need the lock)");
	ret = img_want_args(cmd, argc, argv, 1, 1, "FILE");
	if (ret)
		return ret;
	if (action == 'l')
		flags |= IMG_O_RDONLY;
	ret = img_cli_open(cmd, argv[optind], fmt, flags, &im, NULL);
	if (ret)
		return ret;
	if (strcmp(img_fmt_name(im), "qcow2"))
		ret = img_fail(cmd, "image '%s': %s images have no internal snapshots", im->path,
			       img_fmt_name(im));
	else if (action == 'l')
		ret = snapshot_list(cmd, im, json);
	else
		ret = snapshot_change(cmd, im, action, name);
	img_close(im);
	return ret;
}
