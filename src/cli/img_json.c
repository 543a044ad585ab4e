/* SPDX-License-Identifier: MIT */
/* A tiny JSON writer for `vireo img ... --json` (see img.h). */
#include "cli/img.h"

#include <inttypes.h>
#include <string.h>

void img_json_init(struct img_json *w, FILE *f)
{
	w->f = f;
	w->depth = 0;
	w->need_comma = false;
}

/* Separator, newline and indent before a value, then "key": when there is one. */
static void json_lead(struct img_json *w, const char *key)
{
	if (w->need_comma)
		fputc(',', w->f);
	if (w->depth) {
		fputc('\n', w->f);
		for (unsigned i = 0; i < w->depth; i++)
			fputs("    ", w->f);
	}
	if (key) {
		fputc('"', w->f);
		fputs(key, w->f); /* keys are our own ASCII literals */
		fputs("\": ", w->f);
	}
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static void json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		size_t n = utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
		} else if (n > 1) {
			fwrite(p, 1, n, f);
			p += n;
		} else if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p++);
		} else {
			fputc(*p++, f);
		}
	}
	fputc('"', f);
}

void img_json_obj_begin(struct img_json *w, const char *key)
{
	json_lead(w, key);
	fputc('{', w->f);
	w->depth++;
	w->need_comma = false;
}

static void json_close(struct img_json *w, char c)
{
	w->depth--;
	if (w->need_comma) { /* not empty: closing bracket on its own line */
		fputc('\n', w->f);
		for (unsigned i = 0; i < w->depth; i++)
			fputs("    ", w->f);
	}
	fputc(c, w->f);
	w->need_comma = true;
}

void img_json_obj_end(struct img_json *w)
{
	json_close(w, '}');
}

void img_json_arr_begin(struct img_json *w, const char *key)
{
	json_lead(w, key);
	fputc('[', w->f);
	w->depth++;
	w->need_comma = false;
}

void img_json_arr_end(struct img_json *w)
{
	json_close(w, ']');
}

void img_json_str(struct img_json *w, const char *key, const char *v)
{
	json_lead(w, key);
	if (v)
		json_string(w->f, v);
	else
		fputs("null", w->f);
	w->need_comma = true;
}

void img_json_u64(struct img_json *w, const char *key, uint64_t v)
{
	json_lead(w, key);
	fprintf(w->f, "%" PRIu64, v);
	w->need_comma = true;
}

void img_json_i64(struct img_json *w, const char *key, int64_t v)
{
	json_lead(w, key);
	fprintf(w->f, "%" PRId64, v);
	w->need_comma = true;
}

void img_json_bool(struct img_json *w, const char *key, bool v)
{
	json_lead(w, key);
	fputs(v ? "true" : "false", w->f);
	w->need_comma = true;
}

void img_json_finish(struct img_json *w)
{
	fputc('\n', w->f);
	w->need_comma = false;
}
