/* SPDX-License-Identifier: MIT */
/*
 * `vireo img check`: consistency check (and repair) of a qcow2 image.
 * Exit status as qemu-img's: 0 consistent, 2 corruptions, 3 only leaked clusters,
 * 1 the check could not run, 63 the format has nothing to check.
 *
 * "Corruptions" here are every error the check counts: refcounts lower than the
 * references, wrong COPIED flags, reserved bits, table entries outside the file and
 * clusters used twice (out_of_range and overlaps, which repair never changes).
 * As qemu-img: -r leaks repairs leaked clusters only (corruptions are left and reported),
 * -r all repairs both.
 */
#include "cli/img.h"
#include "cli/cli.h"
#include "common/log.h"

#include <string.h>

static void usage_check(FILE *f)
{
	fprintf(f, "Usage: vireo img check [-f FMT] [-r leaks|all] [--json] [-U] [-q] FILE\n"
		   "\n"
		   "Check a qcow2 image's metadata: refcounts against references, flags, offsets.\n"
		   "  -r leaks   repair leaked clusters only (corruptions are left alone)\n"
		   "  -r all     repair leaks, refcounts that are too low and COPIED flags\n"
		   "  --json     JSON output (also --output=json)\n"
		   "  -U         do not take the image lock (results may be inconsistent)\n"
		   "  -q         print nothing; the exit status tells\n"
		   "Exit status: 0 no problems, 2 corruptions, 3 leaked clusters only,\n"
		   "1 the check failed, 63 the format cannot be checked.\n");
}

static uint64_t errors_of(const struct qcow2_check_result *r)
{
	return (r->corruptions - MIN(r->corruptions, r->corruptions_fixed)) + r->out_of_range +
	       r->overlaps;
}

static int check_status(const struct qcow2_check_result *r)
{
	if (errors_of(r))
		return IMG_EXIT_CHECK_CORRUPT;
	if (r->leaks - MIN(r->leaks, r->leaks_fixed))
		return IMG_EXIT_CHECK_LEAKS;
	return CLI_EXIT_OK;
}

static void report_human(const struct qcow2_check_result *r, const struct qcow2_check_result *fix)
{
	uint64_t errs = errors_of(r), leaks = r->leaks;

	if (fix && (fix->leaks_fixed || fix->corruptions_fixed)) {
		printf("The following inconsistencies were found and repaired:\n\n");
		printf("    %llu leaked clusters\n", (unsigned long long)fix->leaks_fixed);
		printf("    %llu corruptions\n\n", (unsigned long long)fix->corruptions_fixed);
		printf("Double checking the fixed image now...\n");
	}
	if (r->out_of_range)
		printf("%llu table entries point outside the file or are misaligned.\n",
		       (unsigned long long)r->out_of_range);
	if (r->overlaps)
		printf("%llu clusters are used by two structures at once.\n",
		       (unsigned long long)r->overlaps);
	if (errs)
		printf("\n%llu errors were found on the image.\n"
		       "Data may be corrupted, or further writes to the image may corrupt it.\n",
		       (unsigned long long)errs);
	if (leaks)
		printf("\n%llu leaked clusters were found on the image.\n"
		       "This means waste of disk space, but no harm to data.\n",
		       (unsigned long long)leaks);
	if (!errs && !leaks)
		printf("No errors were found on the image.\n");
	if (r->total_clusters)
		printf("%llu/%llu = %.2f%% allocated\n", (unsigned long long)r->allocated_clusters,
		       (unsigned long long)r->total_clusters,
		       100.0 * (double)r->allocated_clusters / (double)r->total_clusters);
	printf("Image end offset: %llu\n", (unsigned long long)r->image_end_offset);
}

static void report_json(const struct img *im, const struct qcow2_check_result *r,
			const struct qcow2_check_result *fix)
{
	struct img_json w;

	img_json_init(&w, stdout);
	img_json_obj_begin(&w, NULL);
	img_json_u64(&w, "image-end-offset", r->image_end_offset);
	img_json_u64(&w, "total-clusters", r->total_clusters);
	img_json_u64(&w, "check-errors", 0);
	img_json_u64(&w, "leaks", r->leaks);
	img_json_u64(&w, "corruptions", errors_of(r));
	img_json_u64(&w, "refcount-errors", r->corruptions);
	img_json_u64(&w, "out-of-range", r->out_of_range);
	img_json_u64(&w, "overlaps", r->overlaps);
	if (fix) {
		img_json_u64(&w, "leaks-fixed", fix->leaks_fixed);
		img_json_u64(&w, "corruptions-fixed", fix->corruptions_fixed);
	}
	img_json_u64(&w, "allocated-clusters", r->allocated_clusters);
	img_json_str(&w, "filename", im->path);
	img_json_str(&w, "format", img_fmt_name(im));
	img_json_obj_end(&w);
	img_json_finish(&w);
}

enum { OPT_JSON = 256, OPT_OUTPUT };

static const struct option check_opts[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"repair", required_argument, NULL, 'r'},
    {"format", required_argument, NULL, 'f'},
    {"force-share", no_argument, NULL, 'U'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int img_cmd_check(int argc, char **argv)
{
	const char *cmd = "check", *fmt = NULL, *mode = NULL;
	bool json = false, quiet = false, repaired = false;
	unsigned flags = IMG_O_RDONLY;
	struct qcow2_check_result r, fix = {0};
	struct qcow2_info qi;
	struct img *im;
	enum vlog_level lvl;
	int o, ret;

	while ((o = getopt_long(argc, argv, ":f:r:Uqh", check_opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			fmt = optarg;
			break;
		case 'r':
			mode = optarg;
			break;
		case 'U':
			flags |= IMG_O_NOLOCK;
			break;
		case 'q':
			quiet = true;
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
			usage_check(stdout);
			return CLI_EXIT_OK;
		default:
			return img_getopt_error(cmd, o, argv);
		}
	}
	if (fmt && (ret = img_check_format_arg(cmd, "-f", fmt, false)))
		return ret;
	if (mode && strcmp(mode, "leaks") && strcmp(mode, "all"))
		return img_usage_error(cmd, "-r '%s': expected leaks or all", mode);
	if (mode && (flags & IMG_O_NOLOCK))
		return img_usage_error(cmd, "-U cannot go with -r (a repair needs the lock)");
	ret = img_want_args(cmd, argc, argv, 1, 1, "FILE");
	if (ret)
		return ret;
	if (mode)
		flags = IMG_O_REPAIR; /* writable, and a dirty/corrupt image is left to us */
	lvl = vlog_get_level();	      /* the check reports dirty/corrupt itself */
	if (lvl < VLOG_INFO)
		vlog_set_level(VLOG_ERR);
	ret = img_cli_open(cmd, argv[optind], fmt, flags, &im, NULL);
	vlog_set_level(lvl);
	if (ret)
		return ret;
	if (strcmp(img_fmt_name(im), "qcow2")) {
		if (!quiet)
			fprintf(stderr,
				"vireo: img check: image '%s': %s images have no metadata to "
				"check\n",
				im->path, img_fmt_name(im));
		img_close(im);
		return IMG_EXIT_CHECK_UNSUPPORTED;
	}
	ret = qcow2_check(im, false, &r);
	if (!ret)
		ret = qcow2_get_info(im, &qi);
	if (ret)
		goto failed;
	if (mode) {
		bool all = !strcmp(mode, "all");
		bool want = r.leaks || qi.dirty || (all && (r.corruptions || qi.corrupt));
		if (want) {
			ret = qcow2_check_repair(im, all ? QCOW2_REPAIR_ALL : QCOW2_REPAIR_LEAKS, &fix);
			repaired = !ret;
			if (!ret)
				ret = img_flush(im);
			if (!ret) /* report what is left, as a fresh look at the image */
				ret = qcow2_check(im, false, &r);
			if (ret)
				goto failed;
		}
	}
	if (!quiet && json)
		report_json(im, &r, repaired ? &fix : NULL);
	else if (!quiet)
		report_human(&r, repaired ? &fix : NULL);
	img_close(im);
	return check_status(&r);
failed:
	{
		char why[320];
		img_fail(cmd, "image '%s': the check could not complete: %s", im->path,
			 img_req_error(im, ret, why, sizeof(why)));
	}
	img_close(im);
	return CLI_EXIT_ERROR;
}
