/* YAML (libyaml event parser) and JSON (jansson) into the xds_node tree. Aliases share the
 * anchored node; merge keys (<<) are left to the loader. Depth is bounded so hostile input
 * cannot exhaust the stack. */
#include "xds/doc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 128

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct anchor {
    char *name;
    struct xds_node *node;
};

struct xds_doc {
    struct chunk *chunks;
    struct xds_node *root;
    struct anchor *anchors;
    size_t n_anchors;
    size_t n_nodes;
};

static void *arena_alloc(struct xds_doc *doc, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct chunk *c = doc->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        c = malloc(sizeof *c + cap);
        if (!c) abort(); /* control path: configuration loading */
        c->cap = cap;
        c->used = 0;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static struct xds_node *new_node(struct xds_doc *doc, enum xds_node_kind kind)
{
    struct xds_node *n = arena_alloc(doc, sizeof *n);
    memset(n, 0, sizeof *n);
    n->kind = kind;
    doc->n_nodes++;
    return n;
}

static void set_text(struct xds_doc *doc, struct xds_node *n, const char *s, size_t len)
{
    char *t = arena_alloc(doc, len + 1);
    memcpy(t, s, len);
    t[len] = '\0';
    n->text = t;
    n->len = len;
}

/* Children are gathered in a malloc'd vector while the collection is open, then moved. */
struct kidvec {
    struct xds_node **v;
    size_t n, cap;
};

static void kidvec_push(struct kidvec *kv, struct xds_node *n)
{
    if (kv->n == kv->cap) {
        kv->cap = kv->cap ? kv->cap * 2 : 8;
        kv->v = realloc(kv->v, kv->cap * sizeof *kv->v);
        if (!kv->v) abort();
    }
    kv->v[kv->n++] = n;
}

static void kidvec_finish(struct xds_doc *doc, struct kidvec *kv, struct xds_node *n)
{
    n->kids = arena_alloc(doc, (kv->n ? kv->n : 1) * sizeof *n->kids);
    if (kv->n) memcpy(n->kids, kv->v, kv->n * sizeof *n->kids);
    n->n_kids = kv->n;
    free(kv->v);
    *kv = (struct kidvec){0};
}

static struct xds_doc *new_doc(void)
{
    struct xds_doc *doc = calloc(1, sizeof *doc);
    if (!doc) abort();
    return doc;
}

size_t xds_doc_node_count(const struct xds_doc *doc)
{
    return doc->n_nodes;
}

void xds_doc_free(struct xds_doc *doc)
{
    if (!doc) return;
    for (struct chunk *c = doc->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    for (size_t i = 0; i < doc->n_anchors; i++) free(doc->anchors[i].name);
    free(doc->anchors);
    free(doc);
}

const struct xds_node *xds_doc_root(const struct xds_doc *doc)
{
    return doc->root;
}

/* ---- YAML ---- */

struct yparse {
    yaml_parser_t parser;
    struct xds_doc *doc;
    char *err;
    size_t errlen;
};

static void add_anchor(struct xds_doc *doc, const yaml_char_t *name, struct xds_node *n)
{
    if (!name) return;
    struct anchor *a = realloc(doc->anchors, (doc->n_anchors + 1) * sizeof *a);
    if (!a) abort();
    doc->anchors = a;
    a[doc->n_anchors].name = strdup((const char *)name);
    if (!a[doc->n_anchors].name) abort();
    a[doc->n_anchors++].node = n;
}

static struct xds_node *find_anchor(struct xds_doc *doc, const yaml_char_t *name)
{
    for (size_t i = doc->n_anchors; i > 0; i--)
        if (strcmp(doc->anchors[i - 1].name, (const char *)name) == 0)
            return doc->anchors[i - 1].node;
    return NULL;
}

static int yaml_fail(struct yparse *yp)
{
    const yaml_parser_t *p = &yp->parser;
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
    snprintf(yp->err, yp->errlen, "YAML syntax error at line %zu, column %zu: %s%s%s", m->line + 1,
             m->column + 1, p->problem ? p->problem : "unknown error", p->context ? " " : "",
             p->context ? p->context : "");
    return -1;
}

static int next_event(struct yparse *yp, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&yp->parser, ev)) return yaml_fail(yp);
    return 0;
}

static struct xds_node *parse_node(struct yparse *yp, yaml_event_t *ev, int depth);

/* Reads the items of an open mapping or sequence up to its end event. */
static struct xds_node *parse_collection(struct yparse *yp, struct xds_node *n,
                                         yaml_event_type_t end, int depth)
{
    struct kidvec kv = {0};
    for (;;) {
        yaml_event_t ev;
        if (next_event(yp, &ev) < 0) goto fail;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            break;
        }
        struct xds_node *kid = parse_node(yp, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!kid) goto fail;
        kidvec_push(&kv, kid);
    }
    kidvec_finish(yp->doc, &kv, n);
    return n;
fail:
    free(kv.v);
    return NULL;
}

static struct xds_node *parse_node(struct yparse *yp, yaml_event_t *ev, int depth)
{
    struct xds_node *n;
    if (depth > MAX_DEPTH) {
        snprintf(yp->err, yp->errlen, "YAML nesting deeper than %d at line %zu, column %zu",
                 MAX_DEPTH, ev->start_mark.line + 1, ev->start_mark.column + 1);
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = new_node(yp->doc, XDS_NODE_SCALAR);
        n->style = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? XDS_PLAIN : XDS_QUOTED;
        set_text(yp->doc, n, (const char *)ev->data.scalar.value, ev->data.scalar.length);
        add_anchor(yp->doc, ev->data.scalar.anchor, n);
        break;
    case YAML_ALIAS_EVENT:
        n = find_anchor(yp->doc, ev->data.alias.anchor);
        if (!n)
            snprintf(yp->err, yp->errlen,
                     "YAML error at line %zu, column %zu: unknown alias \"%s\"",
                     ev->start_mark.line + 1, ev->start_mark.column + 1,
                     (const char *)ev->data.alias.anchor);
        return n;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        int map = ev->type == YAML_MAPPING_START_EVENT;
        n = new_node(yp->doc, map ? XDS_NODE_MAP : XDS_NODE_SEQ);
        n->line = ev->start_mark.line + 1;
        n->col = ev->start_mark.column + 1;
        /* The anchor names the node before its children are read, as YAML defines. */
        add_anchor(yp->doc, map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor,
                   n);
        return parse_collection(yp, n, map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT,
                                depth);
    }
    default:
        snprintf(yp->err, yp->errlen, "YAML error at line %zu, column %zu: unexpected event",
                 ev->start_mark.line + 1, ev->start_mark.column + 1);
        return NULL;
    }
    n->line = ev->start_mark.line + 1;
    n->col = ev->start_mark.column + 1;
    return n;
}

/* Skips to the first node of the first document; an empty stream is an empty mapping. */
static struct xds_node *parse_stream(struct yparse *yp)
{
    for (;;) {
        yaml_event_t ev;
        if (next_event(yp, &ev) < 0) return NULL;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            return new_node(yp->doc, XDS_NODE_MAP);
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        struct xds_node *n = parse_node(yp, &ev, 0);
        yaml_event_delete(&ev);
        if (!n) return NULL;
        /* Read to the end of this document so trailing syntax errors are reported. */
        if (next_event(yp, &ev) < 0) return NULL;
        yaml_event_delete(&ev);
        return n;
    }
}

struct xds_doc *xds_doc_parse_yaml(const char *text, size_t len, char *err, size_t errlen)
{
    struct yparse yp = {.doc = new_doc(), .err = err, .errlen = errlen};
    if (!yaml_parser_initialize(&yp.parser)) abort();
    yaml_parser_set_input_string(&yp.parser, (const unsigned char *)text, len);
    yp.doc->root = parse_stream(&yp);
    yaml_parser_delete(&yp.parser);
    if (!yp.doc->root) {
        xds_doc_free(yp.doc);
        return NULL;
    }
    return yp.doc;
}

/* ---- JSON ---- */

static struct xds_node *from_json(struct xds_doc *doc, const json_t *v, int depth)
{
    char buf[64];
    struct xds_node *n;
    if (depth > MAX_DEPTH) return NULL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        n = new_node(doc, XDS_NODE_MAP);
        struct kidvec kv = {0};
        const char *key;
        const json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            struct xds_node *k = new_node(doc, XDS_NODE_SCALAR), *kid;
            k->style = XDS_QUOTED;
            set_text(doc, k, key, strlen(key));
            if (!(kid = from_json(doc, val, depth + 1))) {
                free(kv.v);
                return NULL;
            }
            kidvec_push(&kv, k);
            kidvec_push(&kv, kid);
        }
        kidvec_finish(doc, &kv, n);
        return n;
    }
    case JSON_ARRAY: {
        n = new_node(doc, XDS_NODE_SEQ);
        struct kidvec kv = {0};
        size_t i;
        const json_t *val;
        json_array_foreach((json_t *)v, i, val)
        {
            struct xds_node *kid = from_json(doc, val, depth + 1);
            if (!kid) {
                free(kv.v);
                return NULL;
            }
            kidvec_push(&kv, kid);
        }
        kidvec_finish(doc, &kv, n);
        return n;
    }
    case JSON_STRING:
        n = new_node(doc, XDS_NODE_SCALAR);
        n->style = XDS_QUOTED;
        set_text(doc, n, json_string_value(v), json_string_length(v));
        return n;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        strcpy(buf, "true");
        break;
    case JSON_FALSE:
        strcpy(buf, "false");
        break;
    default:
        strcpy(buf, "null");
        break;
    }
    n = new_node(doc, XDS_NODE_SCALAR);
    n->style = XDS_PLAIN;
    set_text(doc, n, buf, strlen(buf));
    return n;
}

struct xds_doc *xds_doc_from_json(const json_t *v)
{
    struct xds_doc *doc = new_doc();
    doc->root = from_json(doc, v, 0);
    if (!doc->root) {
        xds_doc_free(doc);
        return NULL;
    }
    return doc;
}

struct xds_doc *xds_doc_parse_json(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        snprintf(err, errlen, "JSON syntax error at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return NULL;
    }
    struct xds_doc *doc = xds_doc_from_json(v);
    json_decref(v);
    if (!doc) snprintf(err, errlen, "JSON nesting deeper than %d", MAX_DEPTH);
    return doc;
}
