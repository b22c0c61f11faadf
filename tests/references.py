"""Independent re-implementations the tests compare mmovod against."""
import math

import torch


def reference_forward(sd, x, num_layers, heads=8):
    """Naive re-implementation written from the parameter list, one set at a time."""
    def ln(t, p):
        return torch.nn.functional.layer_norm(t, t.shape[-1:], sd[p + ".weight"], sd[p + ".bias"])

    x = x @ sd["mapper.linear.weight"].T + sd["mapper.linear.bias"]
    x = torch.cat([x, sd["mapper.cls_token"][None].expand(x.shape[0], 1, -1)], 1)
    b, t, c = x.shape
    d = c // heads
    for i in range(num_layers):
        p = f"mapper.transformer.layers.{i}."
        y = ln(x, p + "norm1")
        q = (y @ sd[p + "attn.to_queries.weight"].T).reshape(b, t, heads, d)
        kv = y @ sd[p + "attn.to_keys_values.weight"].T
        k = kv[..., :c].reshape(b, t, heads, d)
        v = kv[..., c:].reshape(b, t, heads, d)
        att = torch.einsum("bnhd,bmhd->bnmh", q, k) / math.sqrt(d)
        att = att.softmax(dim=2)
        o = torch.einsum("bnmh,bmhd->bnhd", att, v).reshape(b, t, c)
        x = x + o @ sd[p + "attn.project.weight"].T + sd[p + "attn.project.bias"]
        y = ln(x, p + "norm2")
        h = torch.relu(y @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        x = x + h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
    return x[:, -1]


def max_view_rows(encoded):
    """float32 `(C, D)`: per class, the element-wise maximum over its exemplars' view embeddings (NaN
    rows for classes without a valid exemplar); the rows function of a kind the tests add to the table."""
    rows = torch.full((encoded.num_classes, encoded.embeddings.shape[-1]), float("nan"))
    for c in range(encoded.num_classes):
        views = encoded.embeddings[(encoded.class_of == c) & encoded.valid]
        if len(views):
            rows[c] = views.reshape(-1, views.shape[-1]).amax(0)
    return rows.numpy()
