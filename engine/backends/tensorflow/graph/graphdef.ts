/**
 * A TensorFlow GraphDef written from TypeScript, and the SavedModel that carries it to TensorFlow.
 *
 * tfjs-node runs a SavedModel as one TF_SessionRun: TensorFlow's graph optimiser (grappler) then
 * sees the whole computation at once and, with oneDNN, fuses what its eager ops run one pass at a
 * time (MatMul + BiasAdd + GELU, the LayerNorm pattern, q·kᵀ + scale + mask). This file only
 * builds graphs: nodes, their inputs and attributes, encoded with the protobuf messages tfjs-node
 * ships (dist/proto/api_pb.js, generated from TensorFlow's own .proto files). What the graph
 * computes is ./encoder.ts.
 */

/** tensorflow/core/framework/types.proto */
const DT = { float32: 1, int32: 3, bfloat16: 14 } as const;
export type DType = keyof typeof DT;

/** An attribute value, one of AttrValue's cases. */
export type Attr =
  | { type: DType }
  | { b: boolean }
  | { i: number }
  | { f: number }
  | { s: string }
  | { shape: number[] };

/** An op's output: "node" (output 0) or "node:k". */
export type Ref = string;

interface Node {
  name: string;
  op: string;
  inputs: Ref[];
  attrs: Record<string, Attr>;
  /** Const nodes: the tensor. */
  value?: { dtype: DType; shape: number[]; values: number[] };
}

/**
 * GraphDef.versions.producer: the GraphDef version the graph claims to be written for. 1205 is
 * TensorFlow 2.9's (libtensorflow 2.9.1 is what tfjs-node 4.22 downloads); every op used here
 * existed then, and newer TensorFlow reads older graphs.
 */
const PRODUCER = 1205;

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly taken = new Set<string>();
  private scopes: string[] = [];

  /** Nodes made inside `body` have names under `scope/` (names show in TensorFlow's errors). */
  scope<T>(scope: string, body: () => T): T {
    this.scopes.push(scope);
    try {
      return body();
    } finally {
      this.scopes.pop();
    }
  }

  /** A graph input of `dtype` and `shape` (-1 = any length). Its name is exactly `name`. */
  placeholder(name: string, dtype: DType, shape: number[]): Ref {
    return this.add({ name, op: 'Placeholder', inputs: [], attrs: { dtype: { type: dtype }, shape: { shape } } }, false);
  }

  /** A constant: a scalar, or `values` of `shape` (default: a vector). */
  constant(values: number | number[], dtype: DType, shape?: number[]): Ref {
    const list = typeof values === 'number' ? [values] : values;
    const dims = shape ?? (typeof values === 'number' ? [] : [list.length]);
    return this.add({ name: 'Const', op: 'Const', inputs: [], attrs: { dtype: { type: dtype } }, value: { dtype, shape: dims, values: list } });
  }

  /** A node running `op` on `inputs`; `name` defaults to the op's name (made unique). */
  op(op: string, inputs: Ref[], attrs: Record<string, Attr> = {}, name = op): Ref {
    return this.add({ name, op, inputs, attrs });
  }

  private add(node: Node, scoped = true): Ref {
    const base = scoped && this.scopes.length ? `${this.scopes.join('/')}/${node.name}` : node.name;
    let name = base;
    for (let k = 1; this.taken.has(name); k++) name = `${base}_${k}`;
    if (!scoped && name !== base) throw new Error(`graph input '${base}' is defined twice`);
    this.taken.add(name);
    this.nodes.push({ ...node, name });
    return name;
  }

  /** The SavedModel (saved_model.pb) holding this graph under the tag `tag`, no variables. */
  savedModel(tag: string): Uint8Array {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const pb = require('@tensorflow/tfjs-node/dist/proto/api_pb') as ApiPb;
    const graph = new pb.GraphDef();
    for (const n of this.nodes) graph.addNode(nodeDef(pb, n));
    const versions = new pb.VersionDef();
    versions.setProducer(PRODUCER);
    graph.setVersions(versions);
    const info = new pb.MetaGraphDef.MetaInfoDef();
    info.addTags(tag);
    const meta = new pb.MetaGraphDef();
    meta.setMetaInfoDef(info);
    meta.setGraphDef(graph);
    const model = new pb.SavedModel();
    model.setSavedModelSchemaVersion(1);
    model.addMetaGraphs(meta);
    return model.serializeBinary();
  }

  get size(): number {
    return this.nodes.length;
  }
}

function nodeDef(pb: ApiPb, n: Node): PbMessage {
  const def = new pb.NodeDef();
  def.setName(n.name);
  def.setOp(n.op);
  n.inputs.forEach((r) => def.addInput(r));
  const attrs = def.getAttrMap();
  for (const [key, a] of Object.entries(n.attrs)) attrs.set(key, attrValue(pb, a));
  if (n.value) {
    const t = new pb.Tensor();
    t.setDtype(DT[n.value.dtype]);
    t.setTensorShape(shapeProto(pb, n.value.shape));
    if (n.value.dtype === 'float32') t.setFloatValList(n.value.values);
    else t.setIntValList(n.value.values);
    const v = new pb.AttrValue();
    v.setTensor(t);
    attrs.set('value', v);
  }
  return def;
}

function attrValue(pb: ApiPb, a: Attr): PbMessage {
  const v = new pb.AttrValue();
  if ('type' in a) v.setType(DT[a.type]);
  else if ('b' in a) v.setB(a.b);
  else if ('i' in a) v.setI(a.i);
  else if ('f' in a) v.setF(a.f);
  else if ('s' in a) v.setS(new TextEncoder().encode(a.s));
  else v.setShape(shapeProto(pb, a.shape));
  return v;
}

function shapeProto(pb: ApiPb, dims: number[]): PbMessage {
  const s = new pb.TensorShape();
  for (const size of dims) {
    const d = new pb.TensorShape.Dim();
    d.setSize(size);
    s.addDim(d);
  }
  return s;
}

// The few google-protobuf classes of api_pb.js used above (it has no type declarations).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type PbMessage = any;
type PbClass = { new (): PbMessage };
interface ApiPb {
  GraphDef: PbClass;
  NodeDef: PbClass;
  AttrValue: PbClass;
  Tensor: PbClass;
  TensorShape: PbClass & { Dim: PbClass };
  VersionDef: PbClass;
  MetaGraphDef: PbClass & { MetaInfoDef: PbClass };
  SavedModel: PbClass;
}

// Attribute shorthands for the ops ./encoder.ts writes.
export const T = (dtype: DType = 'float32'): Record<string, Attr> => ({ T: { type: dtype } });
export const bool = (b: boolean): Attr => ({ b });
export const int = (i: number): Attr => ({ i });
export const type = (t: DType): Attr => ({ type: t });
