/*
 * Tag interning: a tag's UTF-8 bytes to a dense int32 index, in plain C so that the scan
 * runs without the GIL. Open addressing with FNV-1a, and a guess before the hash:
 * writers log the same tags in the same order at every step, so the tag that followed
 * this one last time is tried first. Python keeps the names across files (the
 * caller's list), so indices stay stable over a run.
 */

typedef struct {
    /* into a bytes object of the caller's list, or into the scanned buffer */
    const unsigned char *ptr;
    uint64_t len;
    uint32_t hash;
    int32_t index; /* -1: empty slot */
} Slot;

typedef struct {
    Slot *slots;
    size_t cap; /* a power of two, at least twice the tags held */
    int32_t count;
    int32_t known; /* tags the caller already had; the rest are new in this call */
    Slot *order;   /* the tags by index */
    size_t order_cap;
    /* Writers log the same tags in the same order at every step: next[i] is the tag
       that followed tag i last time, tried before hashing (-1: none yet). */
    int32_t *next;
    int32_t last; /* the tag looked up last; -1 at first */
} Tags;

static uint32_t fnv1a(const unsigned char *ptr, uint64_t len) {
    uint32_t h = 2166136261u;
    for (uint64_t i = 0; i < len; i++) h = (h ^ ptr[i]) * 16777619u;
    return h;
}

static int tags_grow(Tags *t) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    Slot *slots = malloc(cap * sizeof(Slot));
    if (!slots) return 0;
    for (size_t i = 0; i < cap; i++) slots[i].index = -1;
    for (int32_t i = 0; i < t->count; i++) {
        size_t at = t->order[i].hash & (cap - 1);
        while (slots[at].index >= 0) at = (at + 1) & (cap - 1);
        slots[at] = t->order[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 1;
}

enum { TAG_NO_MEMORY = -1, TAG_NOT_UTF8 = -2 };

/* The index of a tag, adding it when new; TAG_NO_MEMORY, or TAG_NOT_UTF8 for a tag
   protobuf would reject (its record then goes to protobuf, which reports it). */
static int32_t tag_lookup(Tags *t, const unsigned char *ptr, uint64_t len) {
    uint32_t h = fnv1a(ptr, len);
    size_t at = h & (t->cap - 1);
    for (; t->slots[at].index >= 0; at = (at + 1) & (t->cap - 1)) {
        Slot *s = &t->slots[at];
        if (s->hash == h && s->len == len && memcmp(s->ptr, ptr, len) == 0) return s->index;
    }
    if (!valid_utf8(ptr, len)) return TAG_NOT_UTF8;
    if (t->count == INT32_MAX) return TAG_NO_MEMORY; /* indices are int32 */
    if ((size_t)t->count >= t->order_cap) {
        size_t cap = t->order_cap ? t->order_cap * 2 : 64;
        Slot *order = realloc(t->order, cap * sizeof(Slot));
        if (!order) return TAG_NO_MEMORY;
        t->order = order;
        int32_t *next = realloc(t->next, cap * sizeof(int32_t));
        if (!next) return TAG_NO_MEMORY;
        for (size_t i = t->order_cap; i < cap; i++) next[i] = -1;
        t->next = next;
        t->order_cap = cap;
    }
    Slot slot = {ptr, len, h, t->count};
    t->order[t->count++] = slot;
    if ((size_t)t->count * 2 > t->cap) return tags_grow(t) ? slot.index : TAG_NO_MEMORY;
    t->slots[at] = slot;
    return slot.index;
}

static int32_t tag_index(Tags *t, const unsigned char *ptr, uint64_t len) {
    if (t->last >= 0) {
        int32_t guess = t->next[t->last];
        if (guess >= 0 && t->order[guess].len == len && memcmp(t->order[guess].ptr, ptr, len) == 0)
            return t->last = guess;
    }
    int32_t index = tag_lookup(t, ptr, len);
    if (index >= 0) {
        if (t->last >= 0) t->next[t->last] = index;
        t->last = index;
    }
    return index;
}

static void tags_free(Tags *t) {
    free(t->slots);
    free(t->order);
    free(t->next);
}

