"""CR102 positives: transformers.pipeline() under several names."""
import transformers as tf
from transformers import pipeline
from transformers import pipeline as make_pipe

a = pipeline("text-generation", model="x")  # expect: CR102
b = make_pipe("text-generation")  # expect: CR102
c = tf.pipeline("text-generation")  # expect: CR102
d = tf.pipelines.pipeline("text-generation")  # expect: CR102
