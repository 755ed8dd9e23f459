# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Networks: shared blocks and one module per family."""
