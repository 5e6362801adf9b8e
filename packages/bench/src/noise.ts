/**
 * Incompressible test bytes for the blob benchmarks: one 4 MiB piece of
 * xorshift noise, varied in place per index (a byte every 512 KiB) so that a
 * long stream of pieces has no repeated chunk and nothing dedups.
 */
export const NOISE_PIECE_BYTES = 4 * 1024 * 1024;

/** Returns piece(i): the same buffer each call, changed for index i (copy it to keep it). */
export function noisePieces(seed = 2463534242): (i: number) => Uint8Array {
  const piece = new Uint8Array(NOISE_PIECE_BYTES);
  const words = new Uint32Array(piece.buffer);
  let x = seed;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return (i) => {
    for (let k = 0; k < 8; k++) piece[k * 524287] = (i * 31 + k) & 0xff;
    return piece;
  };
}
