/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image methods of the Manager interface (sd-bus handlers). */
#pragma once

#include "manager.h"

int images_method_create(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int images_method_check(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int images_method_remove(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int images_method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error);
