// This browser's renders in IndexedDB (audio blobs included), newest first, at most LIMIT kept.

const DB_NAME = "sentiric-dashboard";
const STORE = "renders";
const LIMIT = 50;

let opening = null;

function database() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        request.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    opening.catch(() => {
      opening = null;
    });
  }
  return opening;
}

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function store(mode) {
  const db = await database();
  return db.transaction(STORE, mode).objectStore(STORE);
}

/** All renders, newest first. */
export async function listRenders() {
  const all = await done((await store("readonly")).getAll());
  return all.sort((a, b) => b.id - a.id);
}

/** Keep a render; the oldest ones beyond LIMIT are dropped. Returns its id. */
export async function addRender(entry) {
  const id = await done((await store("readwrite")).add(entry));
  const keys = await done((await store("readonly")).getAllKeys());
  if (keys.length > LIMIT) {
    const objects = await store("readwrite");
    for (const key of keys.slice(0, keys.length - LIMIT)) objects.delete(key);
  }
  return id;
}

export async function getRender(id) {
  return done((await store("readonly")).get(id));
}

export async function deleteRender(id) {
  await done((await store("readwrite")).delete(id));
}

export async function clearRenders() {
  await done((await store("readwrite")).clear());
}
