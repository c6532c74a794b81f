/* geo._native: the search's ring geometry (geo/search_geometry.py) in C.
 *
 * A search from a location not searched from before builds its ring disk: the cells of rings
 * `first`..`last` around its cell at the search level and the ring past them, each with its
 * centre and reach, the flat frame's cosine and the next ring's bound. In Python that took
 * ~56-76 us a build, ~0.7 builds per query at 100k drivers (README, Performance). Here each
 * cell's geometry is computed once into a bounded table (its reach walked as geo.cells walks
 * it) and a disk is built from it in a few microseconds, so disks are not kept at all; a disk
 * then gives the search its cells' records for the search script (floor, then the record
 * tail), nearest floor first, grouped by region. Every level but the coarsest, whose walks
 * geo.search_geometry bounds per disk, is built here.
 *
 * Every value is computed with the same operations in the same order as the Python reference
 * (`geo.cells`, `geo.search_geometry.SearchDisk`), so both give the same bytes (a test holds
 * them equal); build with -ffp-contract=off. H3 itself is the one h3-py carries: its C
 * functions are looked up in its extension module, so both paths read the same H3. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* H3 v4's ABI (h3api.h). */
typedef uint64_t H3Index;
typedef uint32_t H3Error;
typedef struct { double lat, lng; } GeoPoint;
typedef struct { int numVerts; GeoPoint verts[10]; } CellBoundary;

static H3Error (*h3_gridDisk)(H3Index, int, H3Index *);
static H3Error (*h3_maxGridDiskSize)(int, int64_t *);
static H3Error (*h3_gridRing)(H3Index, int, H3Index *);
static H3Error (*h3_cellToLatLng)(H3Index, GeoPoint *);
static H3Error (*h3_cellToBoundary)(H3Index, CellBoundary *);
static H3Error (*h3_cellToParent)(H3Index, int, H3Index *);
static H3Error (*h3_cellToChildrenSize)(H3Index, int, int64_t *);
static H3Error (*h3_cellToChildren)(H3Index, int, H3Index *);
static double (*h3_radsToDegs)(double);
static int (*h3_getResolution)(H3Index);
static int (*h3_isValidCell)(H3Index);

/* geo.cells' constants, computed as Python computes them. */
static const double EARTH_RADIUS_M = 6371008.8;
static double M_PER_DEG, FLAT_OVER_M_PER_DEG, DEG_TO_RAD, HALF_DEG_TO_RAD;
static const double FLAT_SLACK = 0.99, FLAT_MAX_M = 20000.0, REACH_SLACK_M = 0.5;

#define TAIL_MAX 48   /* three length-prefixed decimal texts below 2^53: at most 3 x 17 */

typedef struct {
    double lat, lng, far;
    uint64_t region;
    unsigned char taillen;
    char tail[TAIL_MAX];
} Cell;

/* Open-addressing tables keyed by H3 index (never 0), emptied when full. */
typedef struct {
    size_t mask, used, max;
    H3Index *keys;
    void *values;
    size_t size;
} Table;

static int table_init(Table *t, size_t max, size_t size) {
    size_t cap = 16;
    while (cap < 2 * max) cap *= 2;
    t->mask = cap - 1, t->used = 0, t->max = max, t->size = size;
    t->keys = PyMem_Calloc(cap, sizeof(H3Index));
    t->values = PyMem_Malloc(cap * size);
    return t->keys != NULL && t->values != NULL;
}

static void table_free(Table *t) {
    PyMem_Free(t->keys);
    PyMem_Free(t->values);
}

/* Neighbours stay near each other: a cell's last two digits pick its slot within a run of 64
 * that its grandparent's hash picks, so a disk's cells share a few runs of memory. */
static size_t slot_of(const Table *t, H3Index key) {
    int shift = 3 * (15 - (int)((key >> 52) & 15));
    uint64_t group = (key >> (shift + 6)) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(((group >> 20) << 6) | ((key >> shift) & 63)) & t->mask;
}

static void *table_get(const Table *t, H3Index key) {
    for (size_t i = slot_of(t, key);; i = (i + 1) & t->mask) {
        if (t->keys[i] == key) return (char *)t->values + i * t->size;
        if (t->keys[i] == 0) return NULL;
    }
}

static void *table_add(Table *t, H3Index key) {
    if (t->used >= t->max) {
        memset(t->keys, 0, (t->mask + 1) * sizeof(H3Index));
        t->used = 0;
    }
    size_t i = slot_of(t, key);
    while (t->keys[i] != 0) i = (i + 1) & t->mask;
    t->keys[i] = key;
    t->used++;
    return (char *)t->values + i * t->size;
}

/* geo.cells.haversine_raw_m */
static double haversine_m(double lat1, double lng1, double lat2, double lng2) {
    double p1 = lat1 * DEG_TO_RAD, p2 = lat2 * DEG_TO_RAD;
    double dp = p2 - p1, dl = (lng2 - lng1) * DEG_TO_RAD;
    double s1 = sin(dp / 2), s2 = sin(dl / 2);
    double h = s1 * s1 + cos(p1) * cos(p2) * (s2 * s2);
    return 2 * EARTH_RADIUS_M * asin(fmin(1.0, sqrt(h)));
}

/* geo.cells._farthest_m: the farthest of n points (plus each one's `plus`, if given). */
static double farthest_m(double lat, double lng, const GeoPoint *points, int n,
                         const double *plus) {
    double dists[10], best = -INFINITY;
    int flat = -80.0 <= lat && lat <= 80.0 && -179.0 < lng && lng < 179.0;
    if (flat) {
        double scale = cos(lat * DEG_TO_RAD);
        for (int i = 0; i < n; i++) {
            double dy = points[i].lat - lat, dx = (points[i].lng - lng) * scale;
            dists[i] = sqrt(dy * dy + dx * dx) * FLAT_OVER_M_PER_DEG;
            if (dists[i] > best) best = dists[i];
        }
        flat = best <= FLAT_MAX_M;
    }
    if (!flat)
        for (int i = 0; i < n; i++) dists[i] = haversine_m(lat, lng, points[i].lat, points[i].lng);
    best = -INFINITY;
    for (int i = 0; i < n; i++) {
        double d = plus != NULL ? dists[i] + plus[i] : dists[i];
        if (d > best) best = d;
    }
    return best;
}

static int centre_of(H3Index cell, double *lat, double *lng) {
    GeoPoint g;
    if (h3_cellToLatLng(cell, &g) != 0) return 0;
    *lat = h3_radsToDegs(g.lat), *lng = h3_radsToDegs(g.lng);
    return 1;
}

typedef struct {
    PyObject_HEAD
    int finest;
    uint64_t score_mask, region_keep;
    int bucket_shift;
    Table cells;      /* a cell at a search level -> Cell */
    Table families;   /* a finest cell's parent -> Family */
} Geometry;

/* h3-py's move_nonzeros (its grid_disk and grid_ring drop H3_NULL entries this way). */
static int64_t move_nonzeros(H3Index *a, int64_t n) {
    int64_t i = 0, j = n;
    while (i < j) {
        if (a[j - 1] == 0) j--;
        else if (a[i] != 0) i++;
        else a[i] = a[--j];
    }
    return i;
}

/* A cell's children (h3-py's cell_to_children: H3_NULL entries dropped), at most 7. */
static int children_of(H3Index cell, H3Index *out) {
    int64_t n;
    int res = h3_getResolution(cell);
    if (h3_cellToChildrenSize(cell, res + 1, &n) != 0 || n > 7) return -1;
    memset(out, 0, 7 * sizeof(H3Index));
    if (h3_cellToChildren(cell, res + 1, out) != 0) return -1;
    return (int)move_nonzeros(out, n);
}

/* geo.cells._family: the largest reach among a parent's children, then how far their
 * centres lie from the parent's. */
typedef struct { double far, spread; } Family;

static const Family *family_of(Geometry *g, H3Index parent) {
    const Family *known = table_get(&g->families, parent);
    if (known != NULL) return known;
    H3Index children[7];
    GeoPoint centres[7], parent_centre;
    int n = children_of(parent, children);
    if (n <= 0 || !centre_of(parent, &parent_centre.lat, &parent_centre.lng)) return NULL;
    double far = -INFINITY;
    for (int i = 0; i < n; i++) {
        CellBoundary b;
        if (!centre_of(children[i], &centres[i].lat, &centres[i].lng) ||
            h3_cellToBoundary(children[i], &b) != 0) return NULL;
        for (int v = 0; v < b.numVerts; v++)
            b.verts[v].lat = h3_radsToDegs(b.verts[v].lat),
            b.verts[v].lng = h3_radsToDegs(b.verts[v].lng);
        double d = farthest_m(centres[i].lat, centres[i].lng, b.verts, b.numVerts, NULL);
        if (d > far) far = d;
    }
    Family f = {far + REACH_SLACK_M,
                farthest_m(parent_centre.lat, parent_centre.lng, centres, n, NULL)};
    Family *slot = table_add(&g->families, parent);
    *slot = f;
    return slot;
}

/* geo.layout.score_span: the bucket holding the cell's finest descendants, then their lowest
 * and highest scores. */
static unsigned char score_span(const Geometry *g, H3Index cell, char *out) {
    char text[3][24];
    unsigned long long high = cell & g->score_mask;
    unsigned long long low = high & ~((1ULL << (3 * (15 - h3_getResolution(cell)))) - 1);
    int len[3];
    len[0] = snprintf(text[0], sizeof text[0], "%llu", low >> g->bucket_shift);
    len[1] = snprintf(text[1], sizeof text[1], "%llu", low);
    len[2] = snprintf(text[2], sizeof text[2], "%llu", high);
    unsigned char n = 0;
    for (int i = 0; i < 3; i++) {
        out[n++] = (char)len[i];
        memcpy(out + n, text[i], (size_t)len[i]);
        n += (unsigned char)len[i];
    }
    return n;
}

/* A cell's geometry at a search level (geo.cells.reach: at the finest level its family's
 * reach; coarser, the farthest its finest descendants can lie, walked as coarse_reach walks
 * it), as geo.search_geometry.SearchGeometry._item holds it. */
static const Cell *cell_of(Geometry *g, H3Index cell) {
    const Cell *known = table_get(&g->cells, cell);
    if (known != NULL) return known;
    Cell c;
    H3Index parent, children[7];
    const Family *f;
    int res = h3_getResolution(cell), n;
    if (!centre_of(cell, &c.lat, &c.lng) || res > g->finest) goto failed;
    if (res == g->finest) {
        if (h3_cellToParent(cell, g->finest - 1, &parent) != 0 ||
            (f = family_of(g, parent)) == NULL) goto failed;
        c.far = f->far;
    } else if (res + 1 >= g->finest) {
        if ((f = family_of(g, cell)) == NULL) goto failed;
        c.far = f->spread + f->far;
    } else {
        GeoPoint centres[7];
        double reaches[7];
        if ((n = children_of(cell, children)) <= 0) goto failed;
        for (int i = 0; i < n; i++) {
            const Cell *kid = cell_of(g, children[i]);   /* copied now: the table may empty */
            if (kid == NULL) return NULL;
            centres[i].lat = kid->lat, centres[i].lng = kid->lng, reaches[i] = kid->far;
        }
        c.far = farthest_m(c.lat, c.lng, centres, n, reaches);
    }
    c.region = cell & g->region_keep;
    c.taillen = score_span(g, cell, c.tail);
    Cell *slot = table_add(&g->cells, cell);
    *slot = c;
    return slot;
failed:
    PyErr_Format(PyExc_ValueError, "no geometry for cell %llx", (unsigned long long)cell);
    return NULL;
}

/* geo.cells.cells_within: a new array (PyMem) and its length, or -1. */
static int64_t disk_cells(H3Index origin, int k, H3Index **out) {
    int64_t n;
    if (h3_maxGridDiskSize(k, &n) != 0 || (*out = PyMem_Calloc((size_t)n, sizeof(H3Index)))
        == NULL) return -1;
    if (h3_gridDisk(origin, k, *out) != 0) {
        PyMem_Free(*out);
        return -1;
    }
    return move_nonzeros(*out, n);
}

/* geo.cells.ring, appended to `out` (room for 6k cells, or 1). */
static int64_t ring_cells(H3Index origin, int k, H3Index *out) {
    int64_t n = k > 0 ? 6 * (int64_t)k : 1;
    memset(out, 0, (size_t)n * sizeof(H3Index));
    if (h3_gridRing(origin, k, out) == 0) return move_nonzeros(out, n);
    H3Index *all, *inner = NULL;          /* the disk less the one inside it, in disk order */
    int64_t nall = disk_cells(origin, k, &all), ninner = 0, m = 0;
    if (nall < 0) return -1;
    if (k > 0 && (ninner = disk_cells(origin, k - 1, &inner)) < 0) {
        PyMem_Free(all);
        return -1;
    }
    for (int64_t i = 0; i < nall; i++) {
        int seen = 0;
        for (int64_t j = 0; j < ninner && !seen; j++) seen = inner[j] == all[i];
        if (!seen && m < n) out[m++] = all[i];
    }
    PyMem_Free(all);
    PyMem_Free(inner);
    return m;
}

/* A ring disk (geo.search_geometry.SearchDisk): its cells, then what tells whether anything
 * beyond its last ring can still be nearer. */
typedef struct { double lat, lng, far; } Centre;

typedef struct {
    PyObject_HEAD
    Py_ssize_t ncells, nouter;
    Cell *cells;
    Centre *outer;         /* the next ring's cells */
    int one_region;
    uint64_t region;
    int flat;              /* cos_low is not None */
    double cos_low, centre_lat, centre_lng, near_m;
} Disk;

static PyTypeObject DiskType;

/* geo.search_geometry.search_floors_m over n centres and reaches. */
static void floors_m(const Disk *d, double lat0, double lng0, const double *lat,
                     const double *lng, const double *far, Py_ssize_t stride, Py_ssize_t n,
                     double *out) {
    const char *la = (const char *)lat, *ln = (const char *)lng, *fa = (const char *)far;
    if (d->flat) {          /* geo.cells.flat_floors_m */
        double x_scale = d->cos_low * M_PER_DEG * FLAT_SLACK, y_scale = M_PER_DEG * FLAT_SLACK;
        for (Py_ssize_t i = 0; i < n; i++, la += stride, ln += stride, fa += stride) {
            double dx = (*(const double *)ln - lng0) * x_scale;
            double dy = (*(const double *)la - lat0) * y_scale;
            out[i] = sqrt(dx * dx + dy * dy) - *(const double *)fa;
        }
        return;
    }
    double scale = M_PER_DEG * FLAT_SLACK;       /* geo.cells.cell_floors_m */
    for (Py_ssize_t i = 0; i < n; i++, la += stride, ln += stride, fa += stride) {
        double clat = *(const double *)la, dl = *(const double *)ln - lng0;
        if (!(-180.0 <= dl && dl <= 180.0)) dl -= copysign(360.0, dl);
        double dy = clat - lat0, dx = dl * cos((clat + lat0) * HALF_DEG_TO_RAD);
        double floor = sqrt(dx * dx + dy * dy) * scale - *(const double *)fa;
        out[i] = floor > 0.0 ? floor : 0.0;
    }
}

static void cell_floors(const Disk *d, double lat0, double lng0, double *out) {
    floors_m(d, lat0, lng0, &d->cells[0].lat, &d->cells[0].lng, &d->cells[0].far,
             sizeof(Cell), d->ncells, out);
}

static double outer_min(const Disk *d, double lat0, double lng0) {
    double low = INFINITY, floors[64], *all = d->nouter > 64 ? PyMem_Malloc(
        (size_t)d->nouter * sizeof(double)) : floors;
    if (all == NULL) return -INFINITY;      /* nothing certified: the search reads on */
    floors_m(d, lat0, lng0, &d->outer[0].lat, &d->outer[0].lng, &d->outer[0].far,
             sizeof(Centre), d->nouter, all);
    for (Py_ssize_t i = 0; i < d->nouter; i++) if (all[i] < low) low = all[i];
    if (all != floors) PyMem_Free(all);
    return low;
}

static int point_of(PyObject *point, double *lat, double *lng) {
    PyObject *a = PyObject_GetAttrString(point, "lat"), *b = NULL;
    if (a != NULL) b = PyObject_GetAttrString(point, "lng");
    if (b != NULL) *lat = PyFloat_AsDouble(a), *lng = PyFloat_AsDouble(b);
    Py_XDECREF(a);
    Py_XDECREF(b);
    return b != NULL && !PyErr_Occurred();
}

typedef struct { double floor; Py_ssize_t i; } Ranked;

static int by_floor(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->floor != y->floor) return x->floor < y->floor ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);   /* a stable sort, as Python's */
}

/* Disk.records(point, limit): [(region, records)] as SearchDisk.records gives them. */
static PyObject *disk_records(Disk *d, PyObject *const *args, Py_ssize_t nargs) {
    double lat0, lng0, limit;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "records(point, limit)");
    if (!point_of(args[0], &lat0, &lng0)) return NULL;
    limit = PyFloat_AsDouble(args[1]);
    if (limit == -1.0 && PyErr_Occurred()) return NULL;
    double *floors = PyMem_Malloc((size_t)(d->ncells + 1) * sizeof(double));
    Ranked *kept = PyMem_Malloc((size_t)(d->ncells + 1) * sizeof(Ranked));
    PyObject *result = NULL;
    if (floors == NULL || kept == NULL) goto done;
    cell_floors(d, lat0, lng0, floors);
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < d->ncells; i++)
        if (floors[i] <= limit) kept[n].floor = floors[i], kept[n++].i = i;
    qsort(kept, (size_t)n, sizeof(Ranked), by_floor);
    if ((result = PyList_New(0)) == NULL) goto done;
    /* Regions in the order their first record comes; each one's records nearest first. */
    for (Py_ssize_t first = 0; first < n; first++) {
        uint64_t region = d->cells[kept[first].i].region;
        int earlier = 0;
        for (Py_ssize_t j = 0; j < first && !earlier; j++)
            earlier = d->cells[kept[j].i].region == region;
        if (earlier) continue;
        size_t size = 0;
        for (Py_ssize_t j = first; j < n; j++)
            if (d->cells[kept[j].i].region == region) size += 8 + d->cells[kept[j].i].taillen;
        PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        if (blob == NULL) goto fail;
        char *o = PyBytes_AS_STRING(blob);
        for (Py_ssize_t j = first; j < n; j++) {
            const Cell *c = &d->cells[kept[j].i];
            if (c->region != region) continue;
            memcpy(o, &kept[j].floor, 8);       /* '<d': this extension builds little-endian */
            memcpy(o + 8, c->tail, c->taillen);
            o += 8 + c->taillen;
        }
        PyObject *item = Py_BuildValue("(KN)", (unsigned long long)region, blob);
        if (item == NULL || PyList_Append(result, item) != 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(floors);
    PyMem_Free(kept);
    if (result == NULL && !PyErr_Occurred()) PyErr_NoMemory();
    return result;
}

/* Disk.clear_beyond(point, limit): SearchDisk.clear_beyond. */
static PyObject *disk_clear_beyond(Disk *d, PyObject *const *args, Py_ssize_t nargs) {
    double lat0, lng0, limit;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "clear_beyond(point, limit)");
    if (!point_of(args[0], &lat0, &lng0)) return NULL;
    limit = PyFloat_AsDouble(args[1]);
    if (limit == -1.0 && PyErr_Occurred()) return NULL;
    if (d->near_m - haversine_m(lat0, lng0, d->centre_lat, d->centre_lng) > limit) Py_RETURN_TRUE;
    return PyBool_FromLong(outer_min(d, lat0, lng0) > limit);
}

/* The Python reference's view of a disk, for tests: its cells and outer ring as SearchCell
 * tuples, then region, cos_low, centre and near_m. */
static PyObject *disk_view(Disk *d, PyObject *Py_UNUSED(ignored)) {
    PyObject *cells = PyTuple_New(d->ncells), *outer = PyTuple_New(d->nouter);
    if (cells == NULL || outer == NULL) goto fail;
    for (Py_ssize_t i = 0; i < d->ncells; i++) {
        const Cell *c = &d->cells[i];
        PyObject *t = Py_BuildValue("(ddd(y#K))", c->lat, c->lng, c->far, c->tail,
                                    (Py_ssize_t)c->taillen, (unsigned long long)c->region);
        if (t == NULL) goto fail;
        PyTuple_SET_ITEM(cells, i, t);
    }
    for (Py_ssize_t i = 0; i < d->nouter; i++) {
        PyObject *t = Py_BuildValue("(ddd)", d->outer[i].lat, d->outer[i].lng, d->outer[i].far);
        if (t == NULL) goto fail;
        PyTuple_SET_ITEM(outer, i, t);
    }
    PyObject *region = d->one_region ? PyLong_FromUnsignedLongLong(d->region) : Py_NewRef(Py_None);
    PyObject *cos_low = d->flat ? PyFloat_FromDouble(d->cos_low) : Py_NewRef(Py_None);
    return Py_BuildValue("(NNNN(dd)d)", cells, outer, region, cos_low, d->centre_lat,
                         d->centre_lng, d->near_m);
fail:
    Py_XDECREF(cells);
    Py_XDECREF(outer);
    return NULL;
}

static void disk_dealloc(Disk *d) {
    PyMem_Free(d->cells);
    PyMem_Free(d->outer);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyMethodDef disk_methods[] = {
    {"records", (PyCFunction)(void (*)(void))disk_records, METH_FASTCALL,
     "records(point, limit): [(region, records for its search script)], nearest floor first"},
    {"clear_beyond", (PyCFunction)(void (*)(void))disk_clear_beyond, METH_FASTCALL,
     "clear_beyond(point, limit): whether no point beyond the rings lies within limit"},
    {"view", (PyCFunction)disk_view, METH_NOARGS,
     "view(): (cells, outer, region, cos_low, centre, near_m), as SearchDisk holds them"},
    {NULL}
};

static PyTypeObject DiskType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "geo._native.Disk",
    .tp_basicsize = sizeof(Disk),
    .tp_dealloc = (destructor)disk_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Rings first..last around a cell of a search level, as a search reads them.",
    .tp_methods = disk_methods,
};

/* geo.cells.lowest_cos over the disk's cells, its outer ring and its origin. */
static void lowest_cos(Disk *d, const Cell *origin) {
    double top_lat = origin->lat, low_lat = origin->lat, far = origin->far;
    double west = origin->lng, east = origin->lng;
    for (Py_ssize_t i = 0; i < d->ncells + d->nouter; i++) {
        double lat, lng, f;
        if (i < d->ncells) lat = d->cells[i].lat, lng = d->cells[i].lng, f = d->cells[i].far;
        else {
            Py_ssize_t o = i - d->ncells;
            lat = d->outer[o].lat, lng = d->outer[o].lng, f = d->outer[o].far;
        }
        if (lat > top_lat) top_lat = lat;
        if (lat < low_lat) low_lat = lat;
        if (lng < west) west = lng;
        if (lng > east) east = lng;
        if (f > far) far = f;
    }
    double far_deg = far / M_PER_DEG;
    double top = (top_lat > -low_lat ? top_lat : -low_lat) + far_deg;
    d->flat = 0;
    if (top >= 89.0) return;
    double cos_top = cos(top * DEG_TO_RAD);
    west -= far_deg / cos_top, east += far_deg / cos_top;
    if (west <= -179.0 || east >= 179.0 || east - west > 90.0) return;
    d->flat = 1, d->cos_low = cos_top;
}

/* Geometry.disk(origin, first, last) */
static PyObject *geometry_disk(Geometry *g, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "disk(origin, first, last)");
    if (g->cells.keys == NULL) return PyErr_Format(PyExc_ValueError, "Geometry not set up");
    unsigned long long origin = PyLong_AsUnsignedLongLong(args[0]);
    long first = PyLong_AsLong(args[1]), last = PyLong_AsLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (first < 0 || last < first || last > 100000)
        return PyErr_Format(PyExc_ValueError, "rings must satisfy 0 <= first <= last");
    if (!h3_isValidCell(origin)) return PyErr_Format(PyExc_ValueError, "not a cell: %llx", origin);
    if (h3_getResolution(origin) > g->finest)
        return PyErr_Format(PyExc_ValueError, "the origin is finer than the finest level");
    H3Index *inner = NULL, *outer = NULL;
    int64_t ninner = 0, nouter;
    Disk *d = PyObject_New(Disk, &DiskType);
    if (d == NULL) return NULL;
    d->cells = NULL, d->outer = NULL;
    if (first == 0) {
        if ((ninner = disk_cells(origin, (int)last, &inner)) < 0) goto h3_failed;
    } else {
        int64_t cap = 0;
        for (long k = first; k <= last; k++) cap += 6 * (int64_t)k;
        if ((inner = PyMem_Calloc((size_t)cap, sizeof(H3Index))) == NULL) goto no_memory;
        for (long k = first; k <= last; k++) {
            int64_t m = ring_cells(origin, (int)k, inner + ninner);
            if (m < 0) goto h3_failed;
            ninner += m;
        }
    }
    if ((outer = PyMem_Calloc(6 * (size_t)(last + 1), sizeof(H3Index))) == NULL) goto no_memory;
    if ((nouter = ring_cells(origin, (int)last + 1, outer)) < 0) goto h3_failed;
    d->ncells = (Py_ssize_t)ninner, d->nouter = (Py_ssize_t)nouter;
    d->cells = PyMem_Malloc((size_t)(ninner + 1) * sizeof(Cell));
    d->outer = PyMem_Malloc((size_t)(nouter + 1) * sizeof(Centre));
    if (d->cells == NULL || d->outer == NULL) goto no_memory;
    const Cell *o = cell_of(g, origin);
    if (o == NULL) goto failed;
    Cell centre = *o;        /* a copy: adding cells below may empty the table */
    d->one_region = 1, d->region = ninner > 0 ? inner[0] & g->region_keep : 0;
    for (int64_t i = 0; i < ninner; i++) {
        const Cell *c = cell_of(g, inner[i]);
        if (c == NULL) goto failed;
        d->cells[i] = *c;
        if (c->region != d->region) d->one_region = 0;
    }
    for (int64_t i = 0; i < nouter; i++) {
        const Cell *c = cell_of(g, outer[i]);
        if (c == NULL) goto failed;
        d->outer[i].lat = c->lat, d->outer[i].lng = c->lng, d->outer[i].far = c->far;
    }
    if (ninner == 0) d->one_region = 0;
    lowest_cos(d, &centre);
    d->centre_lat = centre.lat, d->centre_lng = centre.lng;
    d->near_m = d->nouter > 0 ? outer_min(d, centre.lat, centre.lng) : INFINITY;
    PyMem_Free(inner);
    PyMem_Free(outer);
    return (PyObject *)d;
h3_failed:
    PyErr_Format(PyExc_ValueError, "H3 could not walk the rings around %llx", origin);
    goto failed;
no_memory:
    PyErr_NoMemory();
failed:
    PyMem_Free(inner);
    PyMem_Free(outer);
    Py_DECREF(d);
    return NULL;
}

static int geometry_init(Geometry *g, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"finest", "score_mask", "bucket_shift", "region_keep", "max_cells",
                            NULL};
    unsigned long long score_mask, region_keep;
    Py_ssize_t max_cells = 262144;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iKiK|n", names, &g->finest, &score_mask,
                                     &g->bucket_shift, &region_keep, &max_cells))
        return -1;
    if (g->finest < 1 || g->finest > 15 || g->bucket_shift < 0 || g->bucket_shift > 63 ||
        max_cells < 1) {
        PyErr_SetString(PyExc_ValueError, "finest must be 1..15, bucket_shift 0..63");
        return -1;
    }
    g->score_mask = score_mask, g->region_keep = region_keep;
    table_free(&g->cells);
    table_free(&g->families);
    if (!table_init(&g->cells, (size_t)max_cells, sizeof(Cell)) ||
        !table_init(&g->families, (size_t)max_cells, sizeof(Family))) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void geometry_dealloc(Geometry *g) {
    table_free(&g->cells);
    table_free(&g->families);
    Py_TYPE(g)->tp_free((PyObject *)g);
}

/* Geometry.reach(cell): (lat, lng, reach) of a cell no finer than the finest level. */
static PyObject *geometry_reach(Geometry *g, PyObject *arg) {
    unsigned long long cell = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    if (g->cells.keys == NULL) return PyErr_Format(PyExc_ValueError, "Geometry not set up");
    if (!h3_isValidCell(cell) || h3_getResolution(cell) > g->finest)
        return PyErr_Format(PyExc_ValueError, "not a cell at or above the finest level: %llx",
                            cell);
    const Cell *c = cell_of(g, cell);
    return c == NULL ? NULL : Py_BuildValue("(ddd)", c->lat, c->lng, c->far);
}

/* Geometry.known(cell): whether its geometry is in the table. */
static PyObject *geometry_known(Geometry *g, PyObject *arg) {
    unsigned long long cell = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    return PyBool_FromLong(g->cells.keys != NULL && cell != 0 &&
                           table_get(&g->cells, cell) != NULL);
}

static PyObject *geometry_cached(Geometry *g, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(g->cells.used);
}

static PyMethodDef geometry_methods[] = {
    {"disk", (PyCFunction)(void (*)(void))geometry_disk, METH_FASTCALL,
     "disk(origin, first, last): rings first..last around a search level's cell, as a Disk"},
    {"reach", (PyCFunction)geometry_reach, METH_O,
     "reach(cell): its centre and reach (geo.cells.reach), walked once and kept"},
    {"known", (PyCFunction)geometry_known, METH_O, "known(cell): whether it holds its geometry"},
    {"cached", (PyCFunction)geometry_cached, METH_NOARGS, "how many cells' geometry it holds"},
    {NULL}
};

static PyTypeObject GeometryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "geo._native.Geometry",
    .tp_basicsize = sizeof(Geometry),
    .tp_dealloc = (destructor)geometry_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Geometry(finest, score_mask, bucket_shift, region_keep, max_cells=262144): "
              "the search levels' cells' geometry, computed once, and disks built from it.",
    .tp_methods = geometry_methods,
    .tp_init = (initproc)geometry_init,
    .tp_new = PyType_GenericNew,
};

/* H3's functions, from the extension module of h3-py that this process imported. */
static int bind_h3(void) {
    PyObject *module = PyImport_ImportModule("h3._cy.cells");
    if (module == NULL) return 0;
    PyObject *file = PyObject_GetAttrString(module, "__file__");
    Py_DECREF(module);
    const char *path = file != NULL ? PyUnicode_AsUTF8(file) : NULL;
    void *lib = path != NULL ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    Py_XDECREF(file);
    if (lib == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ImportError, "cannot open h3's library");
        return 0;
    }
#define BIND(name) if ((*(void **)&h3_##name = dlsym(lib, #name)) == NULL) goto missing
    BIND(gridDisk); BIND(maxGridDiskSize); BIND(gridRing); BIND(cellToLatLng);
    BIND(cellToBoundary); BIND(cellToParent); BIND(cellToChildrenSize); BIND(cellToChildren);
    BIND(radsToDegs); BIND(getResolution); BIND(isValidCell);
#undef BIND
    return 1;
missing:
    PyErr_SetString(PyExc_ImportError, "h3's library does not export the functions needed");
    return 0;
}

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geo._native",
    .m_doc = "The search's ring geometry in C (geo.search_geometry).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__native(void) {
    M_PER_DEG = EARTH_RADIUS_M * M_PI / 180;
    FLAT_OVER_M_PER_DEG = M_PER_DEG * 1.01;
    DEG_TO_RAD = M_PI / 180.0;
    HALF_DEG_TO_RAD = M_PI / 360;
    if (!bind_h3() || PyType_Ready(&GeometryType) < 0 || PyType_Ready(&DiskType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Geometry", (PyObject *)&GeometryType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
