/**
 * SizeColumn: directory sizes (spec §1.1, uint64) by record number, without
 * a bigint per record: a number while the size is a safe integer (nearly
 * always), else NaN there and the bigint in a map beside the numbers. The
 * upload's check and the read's size check keep one per kind of size (see
 * PackedRecords for why nothing per record lives on the heap).
 */
import { grownTo } from "./packed-records.js";

export class SizeColumn {
  private values = new Float64Array(16);
  private readonly big = new Map<number, bigint>();

  /** Makes room for record numbers below `capacity`. */
  reserve(capacity: number): void {
    if (capacity > this.values.length) this.values = grownTo(this.values, capacity);
  }

  set(record: number, size: bigint): void {
    const asNumber = Number(size);
    if (Number.isSafeInteger(asNumber)) {
      this.values[record] = asNumber;
      if (this.big.size > 0) this.big.delete(record);
    } else {
      this.values[record] = NaN;
      this.big.set(record, size);
    }
  }

  get(record: number): bigint {
    const n = this.values[record];
    return Number.isNaN(n) ? this.big.get(record)! : BigInt(n);
  }

  /** Whether the record's size is exactly `size`, with no bigint made for the common case. */
  equals(record: number, size: bigint): boolean {
    const n = this.values[record];
    // A safe integer equals a bigint's Number only for the same integer (a larger bigint converts to 2^53 or more).
    return Number.isNaN(n) ? this.big.get(record) === size : Number(size) === n;
  }
}
