/* SPDX-License-Identifier: MIT */
/*
 * `vireo img resize` (raw: the file's length; qcow2: qcow2_resize) and `vireo img commit`
 * (qcow2_commit: the top image's clusters into its backing file, then the top emptied
 * unless -d).
 */
#include "cli/img.h"
#include "cli/cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage_resize(FILE *f)
{
	fprintf(f,
		"Usage: vireo img resize [-f FMT] [--shrink] [-q] FILE [+|-]SIZE\n"
		"\n"
		"Change the virtual size of a raw or qcow2 image: SIZE sets it, +SIZE grows it,\n"
		"-SIZE shrinks it (qcow2 sizes are rounded up to 512 bytes).\n"
		"  --shrink   allow a smaller size (the data beyond it is lost)\n"
		"  -q         print nothing on success\n"
		"A qcow2 image with internal snapshots cannot be resized.\n");
}

static void usage_commit(FILE *f)
{
	fprintf(f,
		"Usage: vireo img commit [-f FMT] [-d] [-p] [-q] FILE\n"
		"\n"
		"Write every cluster a qcow2 image holds (data and zeroes) into its backing file,\n"
		"growing the backing file when it is smaller, then empty FILE (it reads through to\n"
		"the backing file). Nobody else may have the backing file open.\n"
		"  -d   keep FILE's clusters (do not empty it)\n"
		"  -p   show progress\n"
		"  -q   print nothing on success\n");
}

/* "[+|-]SIZE" against the current size. */
static int resize_target(const char *cmd, const char *arg, uint64_t cur, uint64_t *out)
{
	int sign = arg[0] == '+' ? 1 : arg[0] == '-' ? -1 : 0;
	uint64_t v;
	int r = img_parse_size(arg + (sign != 0), &v);

	if (r == -ERANGE)
		return img_usage_error(cmd, "size '%s': too large", arg);
	if (r)
		return img_usage_error(cmd,
				       "size '%s': expected [+|-] and bytes or a number with "
				       "K, M, G, T, P or E",
				       arg);
	if (sign > 0 && add_overflows(cur, v, out))
		return img_usage_error(cmd, "size '%s': the result is too large", arg);
	if (sign < 0 && v > cur)
		return img_usage_error(cmd, "size '%s': larger than the image (%llu bytes)", arg,
				       (unsigned long long)cur);
	if (sign < 0)
		*out = cur - v;
	else if (!sign)
		*out = v;
	return 0;
}

static int resize_raw(const char *cmd, struct img *im, uint64_t size)
{
	struct stat st;

	if (fstat(im->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return img_fail(cmd,
				"image '%s': not a regular file: its size is not ours to change",
				im->path);
	if (size > (uint64_t)INT64_MAX)
		return img_fail(cmd, "image '%s': size too large", im->path);
	if (ftruncate(im->fd, (off_t)size) < 0 || fsync(im->fd) < 0)
		return img_fail(cmd, "image '%s': %s", im->path, strerror(errno));
	return 0;
}

static int resize_qcow2(const char *cmd, struct img *im, uint64_t size)
{
	int ret = qcow2_resize(im, size);

	if (!ret)
		ret = img_flush(im);
	if (ret == -ENOTSUP)
		return img_fail(cmd,
				"image '%s': cannot resize an image with internal snapshots "
				"(delete them first)",
				im->path);
	if (ret == -EFBIG || ret == -EINVAL)
		return img_fail(cmd,
				"image '%s': %llu bytes is too large for this image's cluster size",
				im->path, (unsigned long long)size);
	if (ret)
		return img_fail(cmd, "image '%s': resize failed: %s", im->path, strerror(-ret));
	return 0;
}

enum { OPT_SHRINK = 256 };

static const struct option resize_opts[] = {
    {"shrink", no_argument, NULL, OPT_SHRINK},
    {"format", required_argument, NULL, 'f'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int img_cmd_resize(int argc, char **argv)
{
	const char *cmd = "resize", *fmt = NULL, *size_arg = NULL;
	bool shrink = false, quiet = false;
	uint64_t size = 0;
	struct img *im;
	int o, ret;

	/* "-1G" is a size, not options: take a last argument like that out of getopt's way. */
	if (argc > 2 && argv[argc - 1][0] == '-' && argv[argc - 1][1] >= '0' &&
	    argv[argc - 1][1] <= '9')
		size_arg = argv[--argc];
	while ((o = getopt_long(argc, argv, ":f:qh", resize_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case OPT_SHRINK:
			shrink = true;
			break;
		case 'h':
			usage_resize(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, o, argv);
		}
	}
	if (fmt && (ret = img_check_format_arg(cmd, "-f", fmt, false)))
		return ret;
	ret = img_want_args(cmd, argc, argv, size_arg ? 1 : 2, size_arg ? 1 : 2,
			    size_arg || argc > optind ? "SIZE" : "FILE and SIZE");
	if (ret)
		return ret;
	if (!size_arg)
		size_arg = argv[optind + 1];
	ret = img_cli_open(cmd, argv[optind], fmt, 0, &im, NULL);
	if (ret)
		return ret;
	ret = resize_target(cmd, size_arg, im->size, &size);
	if (ret)
		goto out;
	if (!img_format_writable(img_fmt_name(im))) {
		ret = img_fail(cmd, "image '%s': %s images are read-only here", im->path,
			       img_fmt_name(im));
		goto out;
	}
	if (size < im->size && !shrink) {
		ret = img_usage_error(cmd,
				      "%llu bytes is smaller than the image (%llu): the data "
				      "beyond it would be lost; add --shrink",
				      (unsigned long long)size, (unsigned long long)im->size);
		goto out;
	}
	if (!strcmp(img_fmt_name(im), "raw"))
		ret = resize_raw(cmd, im, size);
	else
		ret = resize_qcow2(cmd, im, size);
	if (!ret && !quiet)
		printf("Image resized.\n");
out:
	img_close(im);
	return ret;
}

static void commit_progress(void *opaque, uint64_t done, uint64_t total)
{
	int *last = opaque, pm = total ? (int)(done * 1000 / total) : 1000;

	if (pm == *last)
		return;
	*last = pm;
	fprintf(stderr, "\r  %5.1f%%   ", pm / 10.0);
	fflush(stderr);
}

static const struct option commit_opts[] = {
    {"format", required_argument, NULL, 'f'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int img_cmd_commit(int argc, char **argv)
{
	const char *cmd = "commit", *fmt = NULL;
	struct qcow2_commit_opts co = {0};
	bool quiet = false, progress = false;
	int last = -1;
	char err[768] = "";
	struct img *im;
	int o, ret;

	while ((o = getopt_long(argc, argv, ":f:qdph", commit_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'd':
			co.keep = true;
			break;
		case 'p':
			progress = true;
			break;
		case 'h':
			usage_commit(stdout);
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
	ret = img_cli_open(cmd, argv[optind], fmt, 0, &im, NULL);
	if (ret)
		return ret;
	if (strcmp(img_fmt_name(im), "qcow2")) {
		ret = img_fail(cmd, "image '%s': %s images have no backing file to commit into",
			       im->path, img_fmt_name(im));
	} else if (!im->backing) {
		ret = img_fail(cmd, "image '%s': has no backing file to commit into", im->path);
	} else {
		if (progress && !quiet) {
			co.progress = commit_progress;
			co.opaque = &last;
			commit_progress(&last, 0, im->size);
		}
		int r = qcow2_commit(im, &co, err, sizeof(err));
		if (!r)
			r = img_flush(im);
		if (last >= 0)
			fputc('\n', stderr);
		if (r)
			ret = img_fail(cmd, "%s%s%s", err[0] ? err : "commit failed",
				       err[0] ? "" : ": ", err[0] ? "" : strerror(-r));
		else if (!quiet)
			printf("Image committed.\n");
	}
	img_close(im);
	return ret;
}
