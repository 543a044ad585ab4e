/* SPDX-License-Identifier: MIT */
#include "img_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_mkdtemp(void)
{
	const char *t = getenv("TMPDIR");
	char buf[512];

	snprintf(buf, sizeof(buf), "%s/vireo-img-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(buf))
		return NULL;
	return strdup(buf);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

void tu_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int tu_run(char *const argv[], char *out, size_t outlen)
{
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char tmp[4096];
		ssize_t r = read(pfd[0], tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (out && got + 1 < outlen) {
			size_t n = (size_t)r < outlen - 1 - got ? (size_t)r : outlen - 1 - got;
			memcpy(out + got, tmp, n);
			got += n;
		}
	}
	if (out && outlen)
		out[got] = 0;
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
}

static int run_va(const char *prog, char *out, size_t outlen, va_list ap)
{
	char *argv[64];
	int n = 0;
	argv[n++] = (char *)(uintptr_t)prog;
	for (const char *a; n < 63 && (a = va_arg(ap, const char *));)
		argv[n++] = (char *)(uintptr_t)a;
	argv[n] = NULL;
	return tu_run(argv, out, outlen);
}

int tu_qemu_img(char *out, size_t outlen, ...)
{
	va_list ap;
	va_start(ap, outlen);
	int r = run_va("qemu-img", out, outlen, ap);
	va_end(ap);
	return r;
}

int tu_qemu_io(char *out, size_t outlen, ...)
{
	va_list ap;
	va_start(ap, outlen);
	int r = run_va("qemu-io", out, outlen, ap);
	va_end(ap);
	return r;
}

bool tu_have_qemu(void)
{
	char out[256];
	bool ok = tu_qemu_img(out, sizeof(out), "--version", NULL) == 0 &&
		  tu_qemu_io(out, sizeof(out), "--version", NULL) == 0;
	if (!ok)
		fprintf(stderr, "SKIP: qemu-img/qemu-io not found, interop steps skipped\n");
	return ok;
}

uint64_t tu_rand(uint64_t *st)
{
	uint64_t x = *st;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *st = x;
}

void tu_fill(void *buf, size_t len, uint64_t *st)
{
	uint8_t *p = buf;
	while (len) {
		uint64_t v = tu_rand(st);
		size_t n = len < 8 ? len : 8;
		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *p = buf;
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t r = write(fd, p, len);
		if (r <= 0) {
			close(fd);
			return -EIO;
		}
		p += r;
		len -= (size_t)r;
	}
	close(fd);
	return 0;
}

int tu_read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;
	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*buf = malloc(n > 0 ? (size_t)n : 1);
	if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(*buf);
		return -EIO;
	}
	fclose(f);
	*len = (size_t)n;
	return 0;
}

int64_t tu_compare_image(struct img *im, const uint8_t *buf, size_t len)
{
	uint8_t *tmp = malloc(1 << 20);
	int64_t bad = -1;

	if (!tmp)
		return 0;
	if (im->size != len) {
		fprintf(stderr, "size differs: image %llu, expected %zu\n",
			(unsigned long long)im->size, len);
		free(tmp);
		return 0;
	}
	for (size_t off = 0; off < len && bad < 0; off += 1 << 20) {
		size_t n = len - off < (1 << 20) ? len - off : (1 << 20);
		if (img_pread(im, tmp, n, off)) {
			bad = (int64_t)off;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (tmp[i] != buf[off + i]) {
				bad = (int64_t)(off + i);
				break;
			}
	}
	free(tmp);
	return bad;
}
