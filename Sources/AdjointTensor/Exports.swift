// Tensors are described with the IR's vocabulary (DType, OpCode, Attributes): re-export it.
@_exported import AdjointIR
