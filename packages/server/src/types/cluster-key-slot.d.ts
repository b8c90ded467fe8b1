// The package ships no types: the one function used here.
declare module 'cluster-key-slot' {
  /** The Redis Cluster slot (0-16383) of a key, after its hash tag if it has one. */
  export default function calculateSlot(key: string): number;
}
