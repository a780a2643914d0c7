/**
 * The parts of tfjs-node 4.22's backend (NodeJSKernelBackend) this folder uses beyond tfjs's public
 * API, in one place for whoever moves tfjs-node on. Each user checks the members it needs and falls
 * back when they are missing (another tfjs backend, another tfjs-node).
 */
import * as tf from '@tensorflow/tfjs-core';

/** A TensorFlow op attribute as tfjs-node's binding takes it. */
export interface OpAttr {
  name: string;
  type: number;
  value: boolean | number | string | number[];
}

export interface NodeBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_BOOL: number; TF_FLOAT: number; TF_INT32: number; TF_ATTR_STRING: number };
  /** Makes the TensorFlow tensor of each input now (from its JavaScript array, the first time) and returns their ids. */
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  /** Runs one TensorFlow op by name in the eager runtime. */
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.TensorInfo[]): tf.Tensor;
  /** Loads a SavedModel's meta graph into a new session; returns its id. */
  loadSavedModelMetaGraph(path: string, tags: string): number;
  /** One session run: `inputs` fed to the ops named in `infos` ("name:0"), the `outputs` fetched. */
  runSavedModel(id: number, inputs: tf.Tensor[], infos: Array<{ name: string }>, outputs: string[]): tf.Tensor[];
  deleteSavedModel(id: number): void;
}

/** tfjs's current backend, seen as tfjs-node's: any member may be missing. */
export function nodeBackend(): Partial<NodeBackend> {
  return tf.backend() as unknown as Partial<NodeBackend>;
}
