/**
 * Compares two snowflake sequence IDs the way Maestro's `compareSequenceIDs` does
 * (maestro-db.md §3.3 step 6): IDs from different nodes are not comparable; otherwise the newer
 * one has the later time, then the higher step — for one node, simply the larger 64-bit number.
 * Sequence IDs exceed 2^53, so they are compared as BigInt.
 *
 * @returns true when `next` is strictly newer than `previous` (any ID is newer than none).
 * @throws Error when either ID is not a decimal int64 or the two come from different nodes.
 */
export function isNewerSequenceId(next: string, previous: string | undefined): boolean {
  const n = parse(next);
  if (previous === undefined || previous === "") return true;
  const p = parse(previous);
  if (nodeOf(n) !== nodeOf(p)) {
    throw new Error(`sequence ids ${next} and ${previous} come from different snowflake nodes`);
  }
  return n > p;
}

function parse(id: string): bigint {
  if (!/^\d{1,19}$/.test(id)) throw new Error(`invalid sequence id ${JSON.stringify(id)}`);
  const value = BigInt(id);
  if (value > 0x7fffffffffffffffn) throw new Error(`sequence id ${id} exceeds int64`);
  return value;
}

function nodeOf(id: bigint): bigint {
  return (id >> 12n) & 0x3ffn;
}
